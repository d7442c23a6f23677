"""Upstream images for tests: OCI layouts of one image, built from the given layers."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Optional, Sequence

from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.oci import (
    MANIFEST_MEDIA_TYPE,
    ConfigChanges,
    Descriptor,
    OciLayout,
    Platform,
    build_image_config,
    build_manifest,
)
from imagetool.tarlayer import LayerMember, write_layer

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
PASSWD = (
    b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n"
SHADOW = b"root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
GSHADOW = b"root:*::\nshadow:*::\nnogroup:*::\n"


def regular(
    path: str, data: bytes, *, mode: int = 0o644, gid: int = 0, group: str = "root"
) -> LayerMember:
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
    layout.write_index(
        [
            Descriptor(
                manifest.media_type, manifest.digest, manifest.size, platform=Platform(architecture)
            )
        ]
    )
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
