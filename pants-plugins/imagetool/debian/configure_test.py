from __future__ import annotations

import tarfile

import pytest
from debian import deb822

from esb_contract.base_lock import LockedPackage
from imagetool.debian import configure
from imagetool.debian.cacerts_test import PLAIN
from imagetool.debian.deb import DebPackage
from imagetool.debian.tree import Accounts, Tree, TreeError, directory, regular_file, symlink

ACCOUNTS = Accounts(
    passwd=b"root:*:0:0:root:/root:/bin/bash\n",
    group=b"root:*:0:\nmail:*:8:\nshadow:*:42:\nutmp:*:43:\n",
)


def _installed(*names: str) -> dict[str, DebPackage]:
    return {
        name: DebPackage(
            LockedPackage(
                name,
                "1.0",
                "all",
                f"https://deb.example.org/{name}_1.0_all.deb",
                "0" * 64,
                1,
                "",
                "",
                "",
            ),
            deb822.Deb822({"Package": name, "Version": "1.0"}),
            {},
            (),
        )
        for name in names
    }


def _merged_tree(*files: tuple[str, bytes]) -> Tree:
    tree = Tree()
    for name in ("bin", "lib", "sbin"):
        tree.add(symlink(name, f"usr/{name}"), owner="test")
    for path, data in files:
        tree.add(regular_file(path, data), owner="test")
    return tree


def _data(tree: Tree, path: str) -> bytes:
    data = tree.file_data(path)
    assert data is not None, f"the tree has no regular file {path}"
    return data


def _info(tree: Tree, path: str) -> tarfile.TarInfo:
    member = tree.get(path)
    assert member is not None, f"the tree has no {path}"
    return member[0]


def test_base_files_turns_var_run_into_a_link() -> None:
    defaults = [
        (f"usr/share/base-files/{name}", name.encode())
        for name in ("dot.profile", "dot.bashrc", "profile", "motd")
    ]
    tree = _merged_tree(*defaults)
    tree.add(directory("var/run"), owner="base-files")
    configure.configure(tree, _installed("base-files"), ACCOUNTS)
    assert _info(tree, "var/run").linkname == "/run"
    assert _info(tree, "var/lock").linkname == "/run/lock"
    assert _data(tree, "root/.profile") == b"dot.profile"
    mail = _info(tree, "var/mail")
    assert (mail.mode, mail.gid, mail.gname) == (0o2775, 8, "mail")
    wtmp = _info(tree, "var/log/wtmp")
    assert (wtmp.mode, wtmp.gid) == (0o664, 43)
    # Info pages are excluded, so there is no info directory to index.
    assert tree.get("usr/share/info/dir") is None


def test_ca_certificates_builds_the_bundle_and_links() -> None:
    tree = _merged_tree(("usr/share/ca-certificates/mozilla/Plain_Root.crt", PLAIN))
    configure.configure(tree, _installed("ca-certificates"), ACCOUNTS)
    assert _data(tree, "etc/ssl/certs/ca-certificates.crt") == PLAIN
    assert (
        _info(tree, "etc/ssl/certs/Plain_Root.pem").linkname
        == "/usr/share/ca-certificates/mozilla/Plain_Root.crt"
    )
    assert _info(tree, "etc/ssl/certs/fdae788a.0").linkname == "Plain_Root.pem"
    assert _data(tree, "etc/ca-certificates.conf").endswith(b"#\nmozilla/Plain_Root.crt\n")


def test_debianutils_lists_the_shells_and_their_usr_aliases() -> None:
    tree = _merged_tree(
        ("usr/share/debianutils/shells", b"# /etc/shells: valid login shells\n/bin/sh\n"),
        ("usr/share/debianutils/shells.d/dash", b"/bin/dash\n"),
        ("usr/share/debianutils/shells.d/bash", b"/bin/bash\n/bin/rbash\n"),
    )
    configure.configure(tree, _installed("debianutils", "dash"), ACCOUNTS)
    assert _data(tree, "etc/shells") == (
        b"# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n"
        b"/bin/rbash\n/usr/bin/rbash\n/bin/dash\n/usr/bin/dash\n"
    )
    assert _data(tree, "var/lib/dpkg/diversions") == b"/bin/sh\n/bin/sh.distrib\ndash\n"


def test_small_steps() -> None:
    tree = _merged_tree(
        ("usr/share/libc-bin/nsswitch.conf", b"hosts: files dns\n"),
        ("usr/share/readline/inputrc", b"set bell-style none\n"),
    )
    configure.configure(
        tree,
        _installed("libc-bin", "readline-common", "tzdata", "netbase", "python3.11-minimal"),
        ACCOUNTS,
    )
    assert _data(tree, "etc/nsswitch.conf") == b"hosts: files dns\n"
    assert _data(tree, "etc/inputrc") == b"set bell-style none\n"
    assert _info(tree, "etc/localtime").linkname == "/usr/share/zoneinfo/Etc/UTC"
    assert _data(tree, "etc/timezone") == b"Etc/UTC\n"
    assert _data(tree, "etc/hosts").startswith(b"127.0.0.1\tlocalhost\n")
    assert _info(tree, "usr/local/lib/python3.11/dist-packages").isdir()


def test_a_step_names_the_file_it_misses() -> None:
    with pytest.raises(
        TreeError,
        match="/usr/share/libc-bin/nsswitch.conf is not installed, but libc-bin's postinst",
    ):
        configure.configure(_merged_tree(), _installed("libc-bin"), ACCOUNTS)


def test_a_step_needing_a_group_asks_for_base_passwd() -> None:
    defaults = [
        (f"usr/share/base-files/{name}", b"")
        for name in ("dot.profile", "dot.bashrc", "profile", "motd")
    ]
    with pytest.raises(TreeError, match="The group mail is not defined: add base-passwd"):
        configure.configure(_merged_tree(*defaults), _installed("base-files"), Accounts(b"", b""))
