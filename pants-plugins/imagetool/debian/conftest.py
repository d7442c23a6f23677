"""Test helpers: real .deb files built with the standard library, and the lock entries for them."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from esb_contract.base_lock import LockedPackage


@dataclass(frozen=True)
class Entry:
    """A member of a test package's data.tar, named as in a real one (`./usr/bin/x`)."""

    path: str
    data: bytes | None = None
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    owner: tuple[str, str] = ("root", "root")
    ids: tuple[int, int] = (0, 0)
    target: str = ""


def file(path: str, data: bytes = b"", **kwargs) -> Entry:
    return Entry(f"./{path}", data, **kwargs)


def directory(path: str, **kwargs) -> Entry:
    return Entry(f"./{path}/", kind=tarfile.DIRTYPE, mode=kwargs.pop("mode", 0o755), **kwargs)


def symlink(path: str, target: str) -> Entry:
    return Entry(f"./{path}", kind=tarfile.SYMTYPE, mode=0o777, target=target)


@dataclass
class DebSpec:
    name: str
    version: str = "1.0-1"
    architecture: str = "amd64"
    entries: list[Entry] = field(default_factory=list)
    control_fields: dict[str, str] = field(default_factory=dict)
    control_files: dict[str, bytes] = field(default_factory=dict)


MakeDeb = Callable[[DebSpec], tuple[LockedPackage, Path]]


@pytest.fixture
def make_deb(tmp_path: Path) -> MakeDeb:
    """Write a .deb into tmp_path and return it with the lock entry that pins it (at its
    `file://` URL)."""

    def make(spec: DebSpec) -> tuple[LockedPackage, Path]:
        control = {
            "Package": spec.name,
            "Version": spec.version,
            "Architecture": spec.architecture,
            "Maintainer": "Test <test@example.org>",
            **spec.control_fields,
            "Description": f"the {spec.name} test package\n A longer description.",
        }
        control_text = "".join(f"{key}: {value}\n" for key, value in control.items())
        control_tar = _tar(
            [file("control", control_text.encode())]
            + [
                file(name, data, mode=0o755 if name.endswith(("inst", "rm")) else 0o644)
                for name, data in spec.control_files.items()
            ],
            compression="gz",
        )
        root = Entry("./", kind=tarfile.DIRTYPE, mode=0o755)
        data_tar = _tar([root] + spec.entries, compression="xz")
        deb = _ar(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", control_tar),
                ("data.tar.xz", data_tar),
            ]
        )
        filename = f"{spec.name}_{spec.version}_{spec.architecture}.deb"
        path = tmp_path / filename
        path.write_bytes(deb)
        locked = LockedPackage(
            name=spec.name,
            version=spec.version,
            architecture=spec.architecture,
            # Served from the file written here, as `debian-rootfs` fetches it.
            url=path.as_uri(),
            sha256=hashlib.sha256(deb).hexdigest(),
            size=len(deb),
            depends=spec.control_fields.get("Depends", ""),
            pre_depends=spec.control_fields.get("Pre-Depends", ""),
            provides=spec.control_fields.get("Provides", ""),
        )
        return locked, path

    return make


def _tar(entries: list[Entry], *, compression: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.type = entry.kind
            info.mode = entry.mode
            info.uname, info.gname = entry.owner
            info.uid, info.gid = entry.ids
            info.linkname = entry.target
            info.mtime = 1_700_000_000
            info.size = len(entry.data or b"")
            tar.addfile(info, io.BytesIO(entry.data) if entry.data is not None else None)
    return buffer.getvalue()


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    archive = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n"
        archive += header.encode() + data + (b"\n" if len(data) % 2 else b"")
    return bytes(archive)
