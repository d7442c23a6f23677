"""The layer that adds service accounts to an upstream base image.

It holds the image's `/etc/passwd`, `group`, `shadow` and `gshadow` (whichever it has, keeping
their ownership and mode) plus the service accounts, each with a group of its own, no password
and no login: the accounts that a Debian base of ours defines in its root filesystem. An account
the image already defines with the same ids is kept; one that clashes with the image's is refused.
"""

from __future__ import annotations

import copy
import tarfile
from collections.abc import Mapping, Sequence

from imagetool.accounts import account_ids
from imagetool.debian.tree import ServiceAccount
from imagetool.image_files import ImageFile
from imagetool.tarlayer import LayerMember
from imagetool.upstream_platform import UpstreamImageError

_ACCOUNT_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")


def accounts_members(
    name: str, files: Mapping[str, ImageFile], accounts: Sequence[ServiceAccount]
) -> list[LayerMember]:
    """The image's account files with `accounts` added; an account the image already defines
    with the same id (user and group) is kept as it is."""
    passwd, group = files.get("etc/passwd"), files.get("etc/group")
    if passwd is None or group is None or passwd.data is None or group.data is None:
        raise UpstreamImageError(
            f"The image {name} has no /etc/passwd and /etc/group to add the service accounts "
            f"{', '.join(f'{a.name}:{a.uid}' for a in accounts)} to.\n\nFix: set "
            "`service_accounts=[]` on the base, and run services as a numeric `user`."
        )
    users = account_ids(passwd.data.decode("utf-8", "replace"))
    groups = account_ids(group.data.decode("utf-8", "replace"))
    shadowed = "etc/shadow" in files
    added: dict[str, list[str]] = {path: [] for path in _ACCOUNT_FILES}
    for account in accounts:
        if users.get(account.name) == account.uid and groups.get(account.name) == account.uid:
            continue
        clash = [
            f"the {kind} {existing!r} ({id_})"
            for kind, table in (("user", users), ("group", groups))
            for existing, id_ in table.items()
            if existing == account.name or id_ == account.uid
        ]
        if clash:
            raise UpstreamImageError(
                f"The service account {account.name}:{account.uid} clashes with "
                f"{', '.join(clash)} of the image {name}.\n\nFix: pick another name, and an id "
                "from 1000 to 59999, in the base's `service_accounts`."
            )
        password = "x" if shadowed else "*"
        added["etc/passwd"].append(
            f"{account.name}:{password}:{account.uid}:{account.uid}:{account.name} service:"
            "/nonexistent:/usr/sbin/nologin\n"
        )
        group_password = "x" if "etc/gshadow" in files else "*"
        added["etc/group"].append(f"{account.name}:{group_password}:{account.uid}:\n")
        # No password, no ageing (the date of the last change stays empty, as in our Debian base).
        added["etc/shadow"].append(f"{account.name}:*::0:99999:7:::\n")
        added["etc/gshadow"].append(f"{account.name}:*::\n")
    members: list[LayerMember] = []
    for path in _ACCOUNT_FILES:
        file = files.get(path)
        if file is None or file.data is None or not added[path]:
            continue
        data = _with_final_newline(file.data) + "".join(added[path]).encode()
        info = copy.copy(file.info)
        info.name, info.type, info.linkname, info.size = path, tarfile.REGTYPE, "", len(data)
        members.append((info, data))
    return members


def account_files(path: str) -> bool:
    return path in _ACCOUNT_FILES


def _with_final_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"
