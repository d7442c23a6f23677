"""Platform facts of upstream images: Debian's Python or the official python images', glibc,
architecture, and the messages for images that lack them."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb_contract.platform_facts import PlatformFacts
from imagetool.conftest import (
    DEBIAN_STATUS,
    debian_rootfs,
    empty,
    make_layout,
    python_image_layer,
    regular,
)
from imagetool.image_files import load_single_image
from imagetool.upstream_platform import UpstreamImageError, read_platform_facts


def facts(layout: Path, name: str = "example/base@sha256:x") -> PlatformFacts:
    return read_platform_facts(load_single_image(layout), name)


def test_debian_python_from_dpkg(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()])
    assert facts(layout) == PlatformFacts(
        "amd64", glibc_version="2.36", python_version="3.11.2", interpreter="/usr/bin/python3.11"
    )


def test_official_python_image_from_its_environment(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path, [debian_rootfs(), python_image_layer("3.12.7")], env={"PYTHON_VERSION": "3.12.7"}
    )
    assert facts(layout) == PlatformFacts(
        "amd64",
        glibc_version="2.36",
        python_version="3.12.7",
        interpreter="/usr/local/bin/python3.12",
    )


def test_official_python_image_version_from_its_header(tmp_path: Path) -> None:
    # PYTHON_VERSION of another minor version (a stale variable) does not count.
    layout = make_layout(
        tmp_path, [debian_rootfs(), python_image_layer("3.13.1")], env={"PYTHON_VERSION": "3.12.7"}
    )
    assert facts(layout).python_version == "3.13.1"
    assert facts(layout).interpreter == "/usr/local/bin/python3.13"


def test_arm64(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()], architecture="arm64")
    assert facts(layout).architecture == "arm64"


def test_a_whiteout_removes_python(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [debian_rootfs(), python_image_layer(), [empty("usr/local/bin/.wh.python3.12")]],
        env={"PYTHON_VERSION": "3.12.7"},
    )
    # The official image's Python is deleted, Debian's remains.
    assert facts(layout).interpreter == "/usr/bin/python3.11"


def test_an_opaque_directory_hides_lower_layers(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [debian_rootfs(), [empty("usr/bin/.wh..wh..opq"), regular("usr/bin/env", b"")]],
    )
    with pytest.raises(UpstreamImageError, match="has no Python"):
        facts(layout)


def test_no_python_names_the_image_and_the_fix(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, [[regular("var/lib/dpkg/status", DEBIAN_STATUS)]])
    with pytest.raises(UpstreamImageError) as error:
        facts(layout, "127.0.0.1:5000/esb/debian@sha256:ab")
    message = str(error.value)
    assert message.startswith("The image 127.0.0.1:5000/esb/debian@sha256:ab has no Python")
    assert 'upstream="python:3.12-slim-bookworm@sha256:' in message
    assert "packages=" in message


def test_no_glibc_names_the_image(tmp_path: Path) -> None:
    status = DEBIAN_STATUS.replace(b"Package: libc6", b"Package: musl")
    layout = make_layout(tmp_path, [debian_rootfs(status=status)])
    with pytest.raises(
        UpstreamImageError, match=r"(?s)records no `libc6` package.*musl images such as Alpine"
    ):
        facts(layout)


def test_several_pythons_without_a_python3_link(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [
            [
                regular("var/lib/dpkg/status", DEBIAN_STATUS),
                regular("usr/bin/python3.11", b""),
                regular("usr/bin/python3.12", b""),
            ]
        ],
    )
    with pytest.raises(
        UpstreamImageError, match=r"several Pythons in /usr/bin \(python3.11, python3.12\)"
    ):
        facts(layout)


def test_pre_release_python_is_refused(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [debian_rootfs(), python_image_layer("3.14.0")],
        env={"PYTHON_VERSION": "3.14.0rc1"},
    )
    # The header of this fake says 3.14.0; the variable, of the same minor version, wins.
    with pytest.raises(UpstreamImageError, match=r"version '3.14.0rc1', not a final release"):
        facts(layout)


def test_distroless_status_directory(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [
            [
                regular(
                    "var/lib/dpkg/status.d/libc6", b"Package: libc6\nVersion: 2.36-9+deb12u4\n"
                ),
                regular(
                    "var/lib/dpkg/status.d/python3.11-minimal",
                    b"Package: python3.11-minimal\nVersion: 3.11.2-6\n",
                ),
                regular("usr/bin/python3.11", b""),
            ]
        ],
    )
    assert facts(layout) == PlatformFacts(
        "amd64", glibc_version="2.36", python_version="3.11.2", interpreter="/usr/bin/python3.11"
    )
