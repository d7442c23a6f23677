"""Reading a downloaded .deb (an ar archive of `debian-binary`, `control.tar.*`, `data.tar.*`)."""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping

from debian import deb822
from debian.debfile import DebFile

from esb_contract.base_lock import LockedPackage
from imagetool.errors import ToolError
from imagetool.tarlayer import LayerMember


class DebError(ToolError):
    """A downloaded .deb is not the package the lock pins."""


@dataclass(frozen=True)
class DebPackage:
    """One .deb's content, with member paths as the package ships them (`bin/bash`, no `./`)."""

    locked: LockedPackage
    control: deb822.Deb822
    control_files: Mapping[str, tuple[tarfile.TarInfo, bytes]]
    members: tuple[LayerMember, ...]

    @property
    def dpkg_name(self) -> str:
        """The name under which dpkg files the package in its database."""
        if self.control.get("Multi-Arch") == "same":
            return f"{self.locked.name}:{self.locked.architecture}"
        return self.locked.name

    def control_text(self, name: str) -> str:
        """A control file (e.g. `postinst`) as text, empty when the package has none."""
        entry = self.control_files.get(name)
        return entry[1].decode(errors="replace") if entry else ""


def read_deb(package: LockedPackage, path: Path) -> DebPackage:
    """Read a downloaded .deb, after checking that it is the one the lock pins."""
    with path.open("rb") as stream:
        actual = hashlib.file_digest(stream, "sha256").hexdigest()
    if actual != package.sha256:
        raise DebError(
            f"{path} is not the locked {package.name} {package.version}: its sha256 is {actual}, "
            f"the lock says {package.sha256}. Download it again from {package.url}, or "
            "regenerate the lock if the archive has replaced the package."
        )
    with DebFile(str(path)) as deb:
        control_tar, data_tar = deb.control.tgz(), deb.data.tgz()
        control_files = {
            package_path(info.name): (info, _read(control_tar, info))
            for info in control_tar
            if info.isfile()
        }
        members = tuple(
            (info, _read(data_tar, info) if info.isfile() else None)
            for info in data_tar
            if package_path(info.name)
        )
    control = deb822.Deb822(control_files["control"][1])
    if (control["Package"], control["Version"]) != (package.name, package.version):
        raise DebError(
            f"{path} holds {control['Package']} {control['Version']}, not the locked "
            f"{package.name} {package.version}."
        )
    return DebPackage(package, control, control_files, members)


def package_path(name: str) -> str:
    """A tar member name as a relative path: `./usr/bin/x` and `/usr/bin/x` are `usr/bin/x`."""
    return str(PurePosixPath("/", name))[1:]


def _read(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    stream = archive.extractfile(info)
    assert stream is not None, f"{info.name} is a regular file"
    return stream.read()
