from __future__ import annotations

import pytest

from imagetool.debian.tree import Tree, TreeError, directory, regular_file, symlink


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
