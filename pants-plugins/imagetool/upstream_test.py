from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path
from typing import Optional, Sequence

import pytest

from esb_contract.platform_facts import PlatformFacts
from imagetool.cli import main
from imagetool.debian.tree import ServiceAccount
from imagetool.image_files import ImageFilesError, load_single_image, read_image_files, select_paths
from imagetool.oci import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    ConfigChanges,
    Descriptor,
    OciLayout,
    Platform,
    build_image_config,
    build_manifest,
)
from imagetool.tarlayer import LayerMember, write_layer
from imagetool.upstream_accounts import account_files, accounts_members
from imagetool.upstream_platform import UpstreamImageError, read_platform_facts

AMD64 = Platform("amd64")
DEBIAN_STATUS = b"""\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4

Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6+deb12u2

Package: removed-one
Status: deinstall ok config-files
Version: 1.0
"""
PASSWD = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n"
SHADOW = b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
GSHADOW = b"root:*::\nshadow:*::\nnogroup:*::\n"


def regular(path: str, data: bytes, *, mode: int = 0o644, gid: int = 0, group: str = "root") -> LayerMember:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.gid, info.gname, info.uname = len(data), mode, gid, group, "root"
    return info, data


def symlink(path: str, target: str) -> LayerMember:
    info = tarfile.TarInfo(path)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info, None


def empty(path: str) -> LayerMember:
    """A whiteout, or any marker file."""
    return regular(path, b"")


def make_layout(
    directory: Path,
    layers: Sequence[Sequence[LayerMember]],
    *,
    env: Optional[dict[str, str]] = None,
    architecture: str = "amd64",
) -> Path:
    """An OCI layout of one image with these layers (bottom first) and config environment."""
    layout = OciLayout.create(directory / "layout")
    descriptors, diff_ids = [], []
    for number, members in enumerate(layers):
        path = directory / f"layer-{number}.tar.gz"
        blob = write_layer(members, path, mtime=0)
        descriptors.append(Descriptor(blob.media_type, blob.digest, blob.size))
        layout.import_blob(path, descriptors[-1])
        diff_ids.append(blob.diff_id)
    config = layout.add_json_blob(
        CONFIG_MEDIA_TYPE,
        build_image_config(
            platform=Platform(architecture),
            diff_ids=diff_ids,
            created_by=["test"] * len(diff_ids),
            changes=ConfigChanges(env=env or {}),
            created=0,
        ),
    )
    manifest = layout.add_json_blob(MANIFEST_MEDIA_TYPE, build_manifest(config, descriptors, {}))
    layout.write_index([Descriptor(manifest.media_type, manifest.digest, manifest.size, platform=Platform(architecture))])
    return layout.root


def debian_rootfs(*extra: LayerMember, status: bytes = DEBIAN_STATUS) -> list[LayerMember]:
    return [
        regular("var/lib/dpkg/status", status),
        regular("usr/bin/python3.11", b"\x7fELF"),
        symlink("usr/bin/python3", "python3.11"),
        regular("etc/passwd", PASSWD),
        regular("etc/group", GROUP),
        regular("etc/shadow", SHADOW, mode=0o640, gid=42, group="shadow"),
        regular("etc/gshadow", GSHADOW, mode=0o640, gid=42, group="shadow"),
        *extra,
    ]


def python_image_layer(version: str = "3.12.7") -> list[LayerMember]:
    """What the official python images add over Debian: CPython under /usr/local."""
    minor = version.rsplit(".", 1)[0]
    return [
        regular(f"usr/local/bin/python{minor}", b"\x7fELF", mode=0o755),
        symlink("usr/local/bin/python3", f"python{minor}"),
        regular(
            f"usr/local/include/python{minor}/patchlevel.h",
            f'#define PY_VERSION              "{version}"\n'.encode(),
        ),
    ]


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
    with pytest.raises(UpstreamImageError, match=r"(?s)records no `libc6` package.*musl images such as Alpine"):
        facts(layout)


def test_several_pythons_without_a_python3_link(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [[regular("var/lib/dpkg/status", DEBIAN_STATUS), regular("usr/bin/python3.11", b""), regular("usr/bin/python3.12", b"")]],
    )
    with pytest.raises(UpstreamImageError, match=r"several Pythons in /usr/bin \(python3.11, python3.12\)"):
        facts(layout)


def test_pre_release_python_is_refused(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path, [debian_rootfs(), python_image_layer("3.14.0")], env={"PYTHON_VERSION": "3.14.0rc1"}
    )
    # The header of this fake says 3.14.0; the variable, of the same minor version, wins.
    with pytest.raises(UpstreamImageError, match=r"version '3.14.0rc1', not a final release"):
        facts(layout)


def test_distroless_status_directory(tmp_path: Path) -> None:
    layout = make_layout(
        tmp_path,
        [
            [
                regular("var/lib/dpkg/status.d/libc6", b"Package: libc6\nVersion: 2.36-9+deb12u4\n"),
                regular("var/lib/dpkg/status.d/python3.11-minimal", b"Package: python3.11-minimal\nVersion: 3.11.2-6\n"),
                regular("usr/bin/python3.11", b""),
            ]
        ],
    )
    assert facts(layout) == PlatformFacts(
        "amd64", glibc_version="2.36", python_version="3.11.2", interpreter="/usr/bin/python3.11"
    )


def test_image_platform_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_layout(tmp_path, [debian_rootfs(), python_image_layer()], env={"PYTHON_VERSION": "3.12.7"})
    out = tmp_path / "platform.json"
    assert main(["image-platform", "--layout", str(layout), "--name", "python:3.12", "--out", str(out)]) == 0
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


def test_no_bytecode_note_for_the_tools_own_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()])
    out = tmp_path / "platform.json"
    assert main(["image-platform", "--layout", str(layout), "--name", "debian", "--out", str(out)]) == 0
    assert capsys.readouterr().out == "debian: amd64, CPython 3.11.2 at /usr/bin/python3.11, glibc 2.36.\n"


def test_image_platform_command_reports_a_missing_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_layout(tmp_path, [[regular("etc/hostname", b"x\n")]])
    status = main(["image-platform", "--layout", str(layout), "--name", "busybox@sha256:ab", "--out", str(tmp_path / "o")])
    assert status == 1
    assert capsys.readouterr().err.startswith("imagetool image-platform: The image busybox@sha256:ab has no Python")


def test_a_zstd_layer_is_named(tmp_path: Path) -> None:
    layout_dir = make_layout(tmp_path, [debian_rootfs()])
    image = load_single_image(layout_dir)
    zstd = Descriptor("application/vnd.oci.image.layer.v1.tar+zstd", image.layers[0].digest, image.layers[0].size)
    with pytest.raises(ImageFilesError, match=r"layer 0 .* has the media type .*zstd"):
        read_image_files(image.__class__(image.layout, image.manifest, image.config, (zstd,)), select_paths(["etc/passwd"]))


def test_uncompressed_layers_are_read(tmp_path: Path) -> None:
    layout_dir = make_layout(tmp_path, [debian_rootfs()])
    image = load_single_image(layout_dir)
    layer = image.layers[0]
    plain = gzip.decompress(image.layout.blob_path(layer.digest).read_bytes())
    descriptor = Descriptor.of("application/vnd.oci.image.layer.v1.tar", plain)
    image.layout.blob_path(descriptor.digest).write_bytes(plain)
    files = read_image_files(image.__class__(image.layout, image.manifest, image.config, (descriptor,)), account_files)
    assert files["etc/passwd"].data == PASSWD


# Service accounts


def account_layer(tmp_path: Path, layers: Sequence[Sequence[LayerMember]], *accounts: str) -> dict[str, LayerMember]:
    image = load_single_image(make_layout(tmp_path, layers))
    files = read_image_files(image, account_files)
    members = accounts_members("example@sha256:ab", files, [ServiceAccount.parse(a) for a in accounts])
    return {info.name: (info, data) for info, data in members}


def test_accounts_are_appended_keeping_ownership_and_mode(tmp_path: Path) -> None:
    members = account_layer(tmp_path, [debian_rootfs()], "esb:10001")
    assert sorted(members) == ["etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]
    info, data = members["etc/passwd"]
    assert data == PASSWD + b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
    assert (info.mode, info.uid, info.gid, info.size) == (0o644, 0, 0, len(data))
    assert members["etc/group"][1] == GROUP + b"esb:x:10001:\n"
    shadow_info, shadow = members["etc/shadow"]
    assert shadow == SHADOW + b"esb:*::0:99999:7:::\n"
    assert (shadow_info.mode, shadow_info.gid, shadow_info.gname) == (0o640, 42, "shadow")
    assert members["etc/gshadow"][1] == GSHADOW + b"esb:*::\n"


def test_accounts_without_shadow_files(tmp_path: Path) -> None:
    members = account_layer(
        tmp_path, [[regular("etc/passwd", PASSWD), regular("etc/group", GROUP.rstrip(b"\n"))]], "esb:10001"
    )
    assert sorted(members) == ["etc/group", "etc/passwd"]
    assert members["etc/passwd"][1].endswith(b"\nesb:*:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n")
    assert members["etc/group"][1] == GROUP + b"esb:*:10001:\n"


def test_an_account_the_image_has_is_kept(tmp_path: Path) -> None:
    passwd = PASSWD + b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
    group = GROUP + b"esb:x:10001:\n"
    members = account_layer(
        tmp_path, [[regular("etc/passwd", passwd), regular("etc/group", group)]], "esb:10001"
    )
    assert members == {}


def test_a_clashing_account_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UpstreamImageError, match=r"nobody:10002 clashes with the user 'nobody' \(65534\)"):
        account_layer(tmp_path, [debian_rootfs()], "esb:10001", "nobody:10002")


def test_accounts_need_account_files(tmp_path: Path) -> None:
    with pytest.raises(UpstreamImageError, match=r"(?s)no /etc/passwd and /etc/group .* `service_accounts=\[\]`"):
        account_layer(tmp_path, [[regular("etc/hostname", b"x\n")]], "esb:10001")


def test_accounts_layer_command(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, [debian_rootfs()])
    blob, descriptor = tmp_path / "layer.tar.gz", tmp_path / "layer.json"
    argv = ["accounts-layer", "--layout", str(layout), "--name", "x", "--account", "esb:10001"]
    assert main([*argv, "--out-blob", str(blob), "--out-descriptor", str(descriptor)]) == 0
    with tarfile.open(blob) as tar:
        assert tar.getnames() == ["etc", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]
        assert tar.extractfile("etc/passwd").read().endswith(b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n")
    assert json.loads(descriptor.read_text())["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_layer_inventories_command(tmp_path: Path) -> None:
    metadata = b"Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n"
    layout = make_layout(
        tmp_path,
        [
            debian_rootfs(),
            [
                regular("usr/local/lib/python3.12/site-packages/six-1.17.0.dist-info/METADATA", metadata),
                empty("var/lib/dpkg/.wh.status"),
            ],
        ],
    )
    out = tmp_path / "inventories"
    assert main(["layer-inventories", "--layout", str(layout), "--out-dir", str(out)]) == 0
    bottom = json.loads((out / "000" / "layer.inventory.json").read_text())
    top = json.loads((out / "001" / "layer.inventory.json").read_text())
    assert [e["name"] for e in bottom["records"]["var/lib/dpkg/status"]] == ["libc6", "python3.11-minimal"]
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
