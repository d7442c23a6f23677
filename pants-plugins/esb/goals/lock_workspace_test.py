from __future__ import annotations

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST

from esb.goals.lock import workspace_lock_argv
from esb.util_rules.lock_testutil import UV_WHEEL
from esb.util_rules.platform import BasePlatform
from esb.util_rules.service import ServiceProject
from esb.util_rules.workspace import WorkspaceMember
from esb_contract import commands, flags
from esb_contract.commands import read_argv


def member(directory: str, root: str = "repo") -> WorkspaceMember:
    address = Address(f"{root}/{directory}" if root else directory, target_name="svc")
    return WorkspaceMember(address, root, directory, "svc", (), EMPTY_DIGEST, EMPTY_DIGEST)


def test_the_workspace_is_locked_at_its_root_naming_every_member_given() -> None:
    group = (member("services/a"), member("services/b"))
    platform = BasePlatform("3.11.2", "2.36", "x86_64", "/usr/bin/python3.11")
    project = ServiceProject(group[0].address, EMPTY_DIGEST, platform, Address("base"))

    argv = (*workspace_lock_argv(group, project, upgrade=True), *UV_WHEEL.argv)

    lock = read_argv(argv)
    assert lock.name == commands.UV_LOCK and flags.WORKSPACE in lock.values
    assert lock.value(flags.PROJECT) == "project"
    assert lock.value(flags.PYTHON_VERSION) == "3.11.2"
    assert lock.value(flags.DISPLAY_DIR) == "repo"
    assert (
        lock.value(flags.RELOCK_COMMAND) == "pants esb-lock repo/services/a:svc repo/services/b:svc"
    )
    assert flags.UPGRADE in lock.values
    # The root's build constraints are written with its lock.
    assert lock.value(flags.BUILD_CONSTRAINTS) == "project/build-constraints.txt"


def test_a_workspace_at_the_build_root_is_shown_as_dot() -> None:
    assert member("services/a", root="").display_root == "."
    assert member("services/a", root="").lock_path == "uv.lock"
