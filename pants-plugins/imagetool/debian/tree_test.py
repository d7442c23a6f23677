from __future__ import annotations

import pytest

from imagetool.debian.tree import (
    Accounts,
    ServiceAccount,
    Tree,
    TreeError,
    directory,
    regular_file,
    symlink,
)


@pytest.fixture
def tree() -> Tree:
    tree = Tree()
    tree.add(symlink("bin", "usr/bin"), owner="layout")
    tree.add(symlink("var/run", "/run"), owner="base-files")
    tree.add(symlink("etc/alternatives/awk", "/usr/bin/mawk"), owner="mawk")
    tree.add(symlink("loop", "loop"), owner="test")
    return tree


@pytest.mark.parametrize(
    "path, expected",
    [
        pytest.param("/bin/sh", "usr/bin/sh", id="relative-link"),
        pytest.param("var/run/lock/x", "run/lock/x", id="absolute-link"),
        pytest.param("/bin/../etc/passwd", "usr/etc/passwd", id="dot-dot-after-link"),
        pytest.param("/etc/alternatives/awk", "etc/alternatives/awk", id="last-component-kept"),
    ],
)
def test_real_path(tree: Tree, path: str, expected: str) -> None:
    assert tree.real_path(path) == expected


def test_real_path_gives_up_on_loops(tree: Tree) -> None:
    with pytest.raises(TreeError, match="too many levels of symbolic links"):
        tree.real_path("loop/x")


def test_first_directory_wins_and_identical_files_merge() -> None:
    tree = Tree()
    tree.add(directory("var/local", mode=0o2775, gid=50, group="staff"), owner="base-files")
    tree.add(directory("var/local"), owner="other")
    tree.add(regular_file("etc/x", b"same"), owner="a")
    tree.add(regular_file("etc/x", b"same"), owner="b")
    assert [(info.name, info.mode) for info, _ in tree.members()] == [
        ("etc/x", 0o644),
        ("var/local", 0o2775),
    ]
    with pytest.raises(TreeError, match="/etc/x is shipped by both a and c, differently"):
        tree.add(regular_file("etc/x", b"other"), owner="c")
    with pytest.raises(TreeError, match="/etc/x is shipped by both a and d, differently"):
        tree.add(directory("etc/x"), owner="d")


def test_service_accounts_join_base_passwd_accounts() -> None:
    accounts = Accounts(passwd=b"root:*:0:0:root:/root:/bin/sh\n", group=b"root:*:0:\n")
    extended = accounts.with_service_accounts([ServiceAccount.parse("esb:10001")])
    assert extended.uids == {"root": 0, "esb": 10001}
    assert extended.gids == {"root": 0, "esb": 10001}
    assert b"esb:*:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n" in extended.passwd


@pytest.mark.parametrize("value", ["Esb:10001", "esb", "esb:99", "esb:70000", "esb:x"])
def test_malformed_service_account(value: str) -> None:
    with pytest.raises(TreeError, match="e.g. `esb:10001`"):
        ServiceAccount.parse(value)


def test_service_account_clash_is_named() -> None:
    accounts = Accounts(
        passwd=b"nobody:*:65534:65534::/:/bin/sh\nesb:*:1000:1000::/:/bin/sh\n", group=b""
    )
    with pytest.raises(TreeError, match="clashes with the user 'esb' \\(1000\\)"):
        accounts.with_service_accounts([ServiceAccount("esb", 10001)])
