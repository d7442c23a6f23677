"""Whether an image's `User` names accounts that the image has.

A container engine resolves the user and group names of an image's `User` (`name`, `uid`,
`name:group`, `uid:gid`, ...) through the image's own `/etc/passwd` and `/etc/group` when it
starts a container, and refuses to start it when a name is missing (`docker run` exits with 125,
"unable to find user"). Numeric ids need no entry. `assemble` checks the names against the
account files the image's layers leave (see `inventory.merged_accounts`), so such an image
fails its build instead of every start.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagetool.errors import ToolError
from imagetool.inventory import ACCOUNT_FILES

PASSWD, GROUP = ACCOUNT_FILES


class UserError(ToolError, ValueError):
    """An image's `User` names an account or group that the image does not have."""


def account_ids(table: str) -> dict[str, int]:
    """The ids of the accounts of a `passwd` or `group` file, by name."""
    ids = {}
    for line in table.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            ids[fields[0]] = int(fields[2])
    return ids


def needs_accounts(user: str) -> bool:
    """Whether `user` names an account or group (else it is ids only, or empty)."""
    return any(part and not part.isdigit() for part in user.split(":", 1))


def check_user(user: str, accounts: Mapping[str, str], *, inherited: bool) -> None:
    """Raise `UserError` unless the image whose account files are `accounts` (text by path,
    as `inventory.merged_accounts` gives them) has the user and group that `user` names.

    `inherited`: the image takes `user` from its base instead of setting it.
    """
    name, _, group = user.partition(":")
    origin = "The `user` the image inherits from its base" if inherited else "The `user` field"
    for part, path, kind, fix in (
        (
            name,
            PASSWD,
            "user",
            f'add `"{name}:<uid from 1000 to 59999>"` to the `service_accounts` field of the '
            "base (it then also gets a group of that name), or use a numeric uid, e.g. "
            '`user="10001"`.',
        ),
        (
            group,
            GROUP,
            "group",
            f"use a group that the image defines (each of the base's `service_accounts` has a "
            f'group of its own name), or a numeric gid, e.g. `user="{name}:10001"`.',
        ),
    ):
        if not part or part.isdigit():
            continue
        if path not in accounts:
            raise UserError(
                f"{origin} is {user!r}, which names the {kind} {part!r}, but the image has no "
                f"/{path} to find it in, so no container of it could start.\n\nFix: use "
                'numeric ids, e.g. `user="10001"` or `user="10001:10001"`.'
            )
        ids = account_ids(accounts[path])
        if part not in ids:
            defined = ", ".join(f"{existing} ({id_})" for existing, id_ in ids.items()) or "none"
            raise UserError(
                f"{origin} is {user!r}, but the image has no {kind} {part!r}, so no container "
                f'of it could start (`docker run` fails with "unable to find {kind}"). Its '
                f"/{path} defines: {defined}.\n\nFix: {fix}"
            )
