"""The commands on upstream images (`image-platform`, `accounts-layer`, `layer-inventories`),
and how their layers are read."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.conftest import (
    GROUP,
    PASSWD,
    debian_rootfs,
    empty,
    make_layout,
    python_image_layer,
    regular,
)
from imagetool.image_files import ImageFilesError, load_single_image, read_image_files, select_paths
from imagetool.oci import Descriptor
from imagetool.upstream_accounts import account_files


def test_image_platform_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_layout(
        tmp_path, [debian_rootfs(), python_image_layer()], env={"PYTHON_VERSION": "3.12.7"}
    )
    out = tmp_path / "platform.json"
    assert (
        main(
            ["image-platform", "--layout", str(layout), "--name", "python:3.12", "--out", str(out)]
        )
        == 0
    )
    assert json.loads(out.read_text()) == {
        "architecture": "amd64",
        "glibc_version": "2.36",
        "interpreter": "/usr/local/bin/python3.12",
        "python_version": "3.12.7",
    }
    assert capsys.readouterr().out.splitlines() == [
        "python:3.12: amd64, CPython 3.12.7 at /usr/local/bin/python3.12, glibc 2.36.",
        # The image tool runs on CPython 3.11.
        "note: service venvs on python:3.12 ship without bytecode: the image tool runs on cpython "
        "3.11 and the base's Python is CPython 3.12; bytecode is valid only for the minor version "
        "that wrote it. Every process start compiles the services' dependencies in memory (see "
        "docs/upstream-bases.md).",
    ]


def test_no_bytecode_note_for_the_tools_own_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()])
    out = tmp_path / "platform.json"
    assert (
        main(["image-platform", "--layout", str(layout), "--name", "debian", "--out", str(out)])
        == 0
    )
    assert (
        capsys.readouterr().out
        == "debian: amd64, CPython 3.11.2 at /usr/bin/python3.11, glibc 2.36.\n"
    )


def test_image_platform_command_reports_a_missing_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = make_layout(tmp_path, [[regular("etc/hostname", b"x\n")]])
    status = main(
        [
            "image-platform",
            "--layout",
            str(layout),
            "--name",
            "busybox@sha256:ab",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 1
    assert capsys.readouterr().err.startswith("The image busybox@sha256:ab has no Python")


def test_accounts_layer_command(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()])
    blob, descriptor = tmp_path / "layer.tar.gz", tmp_path / "layer.json"
    argv = ["accounts-layer", "--layout", str(layout), "--name", "x", "--account", "esb:10001"]
    assert main([*argv, "--out-blob", str(blob), "--out-descriptor", str(descriptor)]) == 0
    with tarfile.open(blob) as tar:
        assert tar.getnames() == ["etc", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None
        assert passwd.read().endswith(
            b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
        )
    assert (
        json.loads(descriptor.read_text())["media_type"]
        == "application/vnd.oci.image.layer.v1.tar+gzip"
    )


def test_layer_inventories_command(tmp_path: Path) -> None:
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n"
    layout = make_layout(
        tmp_path,
        [
            debian_rootfs(),
            [
                regular(
                    "usr/local/lib/python3.12/site-packages/six-1.17.0.dist-info/METADATA", metadata
                ),
                empty("var/lib/dpkg/.wh.status"),
            ],
        ],
    )
    out = tmp_path / "inventories"
    assert main(["layer-inventories", "--layout", str(layout), "--out-dir", str(out)]) == 0
    bottom = json.loads((out / "000" / "layer.inventory.json").read_text())
    top = json.loads((out / "001" / "layer.inventory.json").read_text())
    assert [e["name"] for e in bottom["records"]["var/lib/dpkg/status"]] == [
        "libc6",
        "python3.11-minimal",
    ]
    assert bottom["accounts"] == {"etc/group": GROUP.decode(), "etc/passwd": PASSWD.decode()}
    assert top["accounts"] == {}
    assert top["deleted"] == ["var/lib/dpkg/status"]
    assert top["records"] == {
        "usr/local/lib/python3.12/site-packages/six-1.17.0.dist-info/METADATA": [
            {
                "kind": "python",
                "location": "/usr/local/lib/python3.12/site-packages/six-1.17.0.dist-info/METADATA",
                "name": "six",
                "version": "1.17.0",
            }
        ]
    }


def test_a_zstd_layer_is_named(tmp_path: Path) -> None:
    layout_dir = make_layout(tmp_path, [debian_rootfs()])
    image = load_single_image(layout_dir)
    zstd = Descriptor(
        "application/vnd.oci.image.layer.v1.tar+zstd", image.layers[0].digest, image.layers[0].size
    )
    with pytest.raises(ImageFilesError, match=r"layer 0 .* has the media type .*zstd"):
        read_image_files(
            image.__class__(image.layout, image.manifest, image.config, (zstd,)),
            select_paths(["etc/passwd"]),
        )


def test_uncompressed_layers_are_read(tmp_path: Path) -> None:
    layout_dir = make_layout(tmp_path, [debian_rootfs()])
    image = load_single_image(layout_dir)
    layer = image.layers[0]
    plain = gzip.decompress(image.layout.blob_path(layer.digest).read_bytes())
    descriptor = Descriptor.of("application/vnd.oci.image.layer.v1.tar", plain)
    image.layout.blob_path(descriptor.digest).write_bytes(plain)
    files = read_image_files(
        image.__class__(image.layout, image.manifest, image.config, (descriptor,)), account_files
    )
    assert files["etc/passwd"].data == PASSWD
