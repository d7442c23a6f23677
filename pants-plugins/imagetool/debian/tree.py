"""The root filesystem being assembled: one layer member per path, and who put it there."""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

from imagetool.errors import ToolError
from imagetool.tarlayer import LayerMember

_MAX_SYMLINK_HOPS = 40


class TreeError(ToolError):
    """Two packages (or a package and a configuration step) disagree about a path."""


@dataclass(frozen=True)
class ServiceAccount:
    """An unprivileged account, `name:uid`, that images built on the base can run as."""

    name: str
    uid: int

    _NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

    @classmethod
    def parse(cls, value: str) -> ServiceAccount:
        name, _, uid = value.partition(":")
        if not cls._NAME.match(name) or not uid.isdigit() or not 1000 <= int(uid) <= 59999:
            raise TreeError(
                f"The service account {value!r} is not `name:uid` with a lower-case name and a uid "
                "from 1000 to 59999 (Debian's range for ordinary accounts), e.g. `esb:10001`."
            )
        return cls(name, int(uid))


@dataclass(frozen=True)
class Accounts:
    """User and group ids by name, from `passwd` and `group` files."""

    passwd: bytes
    group: bytes

    @cached_property
    def uids(self) -> dict[str, int]:
        return _ids(self.passwd)

    @cached_property
    def gids(self) -> dict[str, int]:
        return _ids(self.group)

    def with_service_accounts(self, service_accounts: Sequence[ServiceAccount]) -> Accounts:
        """These accounts plus unprivileged ones, each with a group of its own and no login."""
        passwd, group = self.passwd, self.group
        for account in service_accounts:
            clash = [
                f"the {kind} {name!r} ({id_})"
                for kind, table in (("user", self.uids), ("group", self.gids))
                for name, id_ in table.items()
                if name == account.name or id_ == account.uid
            ]
            if clash:
                raise TreeError(
                    f"The service account {account.name}:{account.uid} clashes with {', '.join(clash)} "
                    "of base-passwd. Pick another name, and an id from 1000 to 59999."
                )
            passwd += (
                f"{account.name}:*:{account.uid}:{account.uid}:{account.name} service:"
                "/nonexistent:/usr/sbin/nologin\n"
            ).encode()
            group += f"{account.name}:*:{account.uid}:\n".encode()
        return Accounts(passwd=passwd, group=group)

    def gid(self, group: str) -> int:
        """The id of a group that a configuration step needs."""
        if group not in self.gids:
            raise TreeError(
                f"The group {group} is not defined: add base-passwd, which defines Debian's "
                "system accounts, to the requested packages."
            )
        return self.gids[group]


def _ids(table: bytes) -> dict[str, int]:
    return {
        fields[0]: int(fields[2])
        for line in table.decode().splitlines()
        if len(fields := line.split(":")) > 2
    }


def regular_file(
    path: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0, group: str = "root"
) -> LayerMember:
    info = _info(path, tarfile.REGTYPE, mode, uid, gid, group)
    info.size = len(data)
    return info, data


def directory(path: str, *, mode: int = 0o755, gid: int = 0, group: str = "root") -> LayerMember:
    return _info(path, tarfile.DIRTYPE, mode, 0, gid, group), None


def symlink(path: str, target: str) -> LayerMember:
    info = _info(path, tarfile.SYMTYPE, 0o777, 0, 0, "root")
    info.linkname = target
    return info, None


def _info(path: str, kind: bytes, mode: int, uid: int, gid: int, group: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname, info.gname = "root" if uid == 0 else "", group
    return info


class Tree:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[LayerMember, str]] = {}

    def add(self, member: LayerMember, *, owner: str) -> None:
        """Add a path the way dpkg unpacks one.

        The first package to create a directory sets its owner and mode; any other path may come
        twice only if both copies are identical.
        """
        info = member[0]
        existing = self._entries.get(info.name)
        if existing is None:
            self._entries[info.name] = (member, owner)
        elif info.isdir() and existing[0][0].isdir():
            return
        elif not _identical(existing[0], member):
            raise TreeError(
                f"/{info.name} is shipped by both {existing[1]} and {owner}, differently. dpkg "
                "would refuse to install them together: drop one of them from the request."
            )

    def replace(self, member: LayerMember, *, owner: str) -> None:
        """Set a path whatever it held, as a maintainer script may (e.g. a directory → a link)."""
        self._entries[member[0].name] = (member, owner)

    def get(self, path: str) -> LayerMember | None:
        entry = self._entries.get(path)
        return entry[0] if entry else None

    def file_data(self, path: str) -> bytes | None:
        """The content of a regular file, None when the tree has no such file."""
        entry = self._entries.get(path)
        return entry[0][1] if entry and entry[0][0].isfile() else None

    def real_path(self, path: str) -> str:
        """The path with the symbolic links among its directories resolved, as the kernel would."""
        pending = path.strip("/").split("/")
        resolved: list[str] = []
        hops = 0
        while len(pending) > 1:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = resolved[:-1]
                continue
            entry = self.get("/".join(resolved + [part]))
            if entry is None or not entry[0].issym():
                resolved.append(part)
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise TreeError(f"/{path} has too many levels of symbolic links.")
            if entry[0].linkname.startswith("/"):
                resolved = []
            pending = entry[0].linkname.strip("/").split("/") + pending
        return "/".join(resolved + pending)

    def resolve(self, path: str) -> str:
        """The path with every symbolic link resolved, its last component's included."""
        resolved = self.real_path(path)
        for _ in range(_MAX_SYMLINK_HOPS):
            entry = self.get(resolved)
            if entry is None or not entry[0].issym():
                return resolved
            target = entry[0].linkname
            parent = resolved.rsplit("/", 1)[0] if "/" in resolved else ""
            resolved = self.real_path(target if target.startswith("/") else f"{parent}/{target}")
        raise TreeError(f"/{path} has too many levels of symbolic links.")

    def paths_under(self, directory_path: str) -> list[str]:
        prefix = directory_path.rstrip("/") + "/"
        return sorted(path for path in self._entries if path.startswith(prefix))

    def members(self) -> list[LayerMember]:
        return [self._entries[path][0] for path in sorted(self._entries)]


def _identical(a: LayerMember, b: LayerMember) -> bool:
    (a_info, a_data), (b_info, b_data) = a, b
    return (a_info.type, a_info.mode, a_info.uid, a_info.gid, a_info.linkname, a_data) == (
        b_info.type,
        b_info.mode,
        b_info.uid,
        b_info.gid,
        b_info.linkname,
        b_data,
    )
