from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from esb_contract.base_lock import PackageLock
from esb_contract.platform_facts import PlatformFacts
from imagetool.debian.conftest import DebSpec, Entry, MakeDeb, directory, file, symlink
from imagetool.debian.deb import DebError, DebPackage, read_deb
from imagetool.debian.rootfs import rootfs_members
from imagetool.debian.tree import TreeError
from imagetool.tarlayer import LayerMember

BASE_PASSWD = DebSpec(
    "base-passwd",
    "3.6.1",
    entries=[
        directory("usr/share/base-passwd"),
        file(
            "usr/share/base-passwd/passwd.master",
            b"root:*:0:0:root:/root:/bin/bash\nmail:*:8:8:mail:/var/mail:/usr/sbin/nologin\n",
        ),
        file(
            "usr/share/base-passwd/group.master",
            b"root:*:0:\nmail:*:8:\nshadow:*:42:\nstaff:*:50:\n",
        ),
    ],
)
TOOL_SCRIPT = b"#!/bin/sh\necho tool\n"
TOOL = DebSpec(
    "tool",
    "2.0-1",
    control_fields={
        "Multi-Arch": "same",
        "Depends": "base-passwd",
        "Homepage": "https://example.org",
    },
    entries=[
        directory("bin"),
        file("bin/tool", TOOL_SCRIPT, mode=0o4755),
        Entry("./bin/tool-hardlink", kind=tarfile.LNKTYPE, mode=0o4755, target="./bin/tool"),
        directory("etc"),
        file("etc/tool.conf", b"verbose = no\n"),
        # Numeric ids from the build machine; the names decide, as with dpkg.
        file("etc/tool.secret", b"s3cret\n", mode=0o640, owner=("root", "shadow"), ids=(0, 999)),
        directory("lib64"),
        symlink("lib64/ld-tool.so.2", "/lib/x86_64-linux-gnu/ld-tool.so.2"),
        directory("usr"),
        directory("usr/share"),
        directory("usr/share/doc"),
        directory("usr/share/doc/tool"),
        file("usr/share/doc/tool/README", b"read me\n"),
        file("usr/share/doc/tool/copyright", b"Licence: MIT\n"),
        directory("usr/share/man"),
        directory("usr/share/man/man1"),
        file("usr/share/man/man1/tool.1.gz", b"manual"),
        directory("usr/share/locale"),
        directory("usr/share/locale/de"),
        file("usr/share/locale/de/tool.mo", b"catalog"),
        directory("var"),
        directory("var/local", mode=0o2775, owner=("root", "staff"), ids=(0, 1234)),
    ],
    control_files={
        "md5sums": (
            f"{hashlib.md5(TOOL_SCRIPT).hexdigest()}  bin/tool\n"
            f"{hashlib.md5(b'read me').hexdigest()}  usr/share/doc/tool/README\n"
        ).encode(),
        "conffiles": b"/etc/tool.conf\n",
        "postinst": (
            b"#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/tl tl /bin/tool 10 \\\n"
            b"    --slave /usr/share/man/man1/tl.1.gz tl.1.gz /usr/share/man/man1/tool.1.gz\n"
        ),
        "triggers": b"# plugins\ninterest-noawait /usr/share/tool/plugins\n",
    },
)


def _packages(make_deb: MakeDeb, *specs: DebSpec) -> list[DebPackage]:
    return [read_deb(*make_deb(spec)) for spec in specs]


def _by_name(members: list[LayerMember]) -> dict[str, LayerMember]:
    return {info.name: (info, data) for info, data in members}


def _text(members: dict[str, LayerMember], path: str) -> str:
    data = members[path][1]
    assert data is not None, f"{path} is not a regular file"
    return data.decode()


def _lock(*packages: DebPackage) -> PackageLock:
    return PackageLock(
        architecture="amd64",
        sources=(),
        requested=(),
        platform=PlatformFacts("amd64", None, None),
        packages=tuple(package.locked for package in packages),
    )


def test_members_keep_ownership_and_modes(make_deb: MakeDeb) -> None:
    members = _by_name(rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL)))
    tool, data = members["usr/bin/tool"]
    assert (tool.mode, tool.uid, tool.gid, data) == (0o4755, 0, 0, TOOL_SCRIPT)
    hardlink, _ = members["usr/bin/tool-hardlink"]
    assert (hardlink.type, hardlink.linkname) == (tarfile.LNKTYPE, "usr/bin/tool")
    secret, _ = members["etc/tool.secret"]
    assert (secret.mode, secret.gid, secret.gname) == (0o640, 42, "shadow")
    local, _ = members["var/local"]
    assert (local.type, local.mode, local.gid, local.gname) == (
        tarfile.DIRTYPE,
        0o2775,
        50,
        "staff",
    )


def test_top_level_directories_merge_into_usr(make_deb: MakeDeb) -> None:
    members = _by_name(rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL)))
    links = {name: members[name][0].linkname for name in ("bin", "lib", "lib64", "sbin")}
    assert links == {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
    assert all(members[name][0].issym() for name in links)
    assert members["usr/lib64/ld-tool.so.2"][0].linkname == "/lib/x86_64-linux-gnu/ld-tool.so.2"
    assert not any(name.startswith(("bin/", "lib64/")) for name in members)


def test_documentation_is_excluded_but_copyright_kept(make_deb: MakeDeb) -> None:
    slim = _by_name(rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL)))
    assert "usr/share/doc/tool/copyright" in slim
    assert not {
        "usr/share/doc/tool/README",
        "usr/share/man/man1/tool.1.gz",
        "usr/share/locale",
    } & set(slim)
    full = _by_name(
        rootfs_members(
            _packages(make_deb, BASE_PASSWD, TOOL), keep_documentation=True, keep_translations=True
        )
    )
    assert {
        "usr/share/doc/tool/README",
        "usr/share/man/man1/tool.1.gz",
        "usr/share/locale/de/tool.mo",
    } <= set(full)
    assert full["usr/share/man/man1/tl.1.gz"][0].linkname == "/etc/alternatives/tl.1.gz"


def test_dpkg_database(make_deb: MakeDeb) -> None:
    members = _by_name(rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL)))
    status = _text(members, "var/lib/dpkg/status")
    assert status.split("\n\n")[1] == (
        "Package: tool\n"
        "Status: install ok installed\n"
        "Maintainer: Test <test@example.org>\n"
        "Architecture: amd64\n"
        "Multi-Arch: same\n"
        "Version: 2.0-1\n"
        "Depends: base-passwd\n"
        "Conffiles:\n"
        f" /etc/tool.conf {hashlib.md5(b'verbose = no' + bytes([10])).hexdigest()}\n"
        "Description: the tool test package\n"
        " A longer description.\n"
        "Homepage: https://example.org\n"
    )
    assert status.startswith("Package: base-passwd\nStatus: install ok installed\n")
    # Multi-Arch: same packages are filed under name:architecture, as database format 1 says.
    assert members["var/lib/dpkg/info/format"][1] == b"1\n"
    listed = _text(members, "var/lib/dpkg/info/tool:amd64.list").splitlines()
    assert listed[:4] == ["/.", "/bin", "/bin/tool", "/bin/tool-hardlink"]
    assert "/usr/share/doc/tool/copyright" in listed and "/usr/share/doc/tool/README" not in listed
    md5sums = _text(members, "var/lib/dpkg/info/tool:amd64.md5sums")
    assert md5sums == f"{hashlib.md5(TOOL_SCRIPT).hexdigest()}  bin/tool\n"
    postinst, _ = members["var/lib/dpkg/info/tool:amd64.postinst"]
    assert postinst.mode == 0o755
    assert "var/lib/dpkg/info/tool:amd64.control" not in members
    assert (
        members["var/lib/dpkg/triggers/File"][1] == b"/usr/share/tool/plugins tool:amd64/noawait\n"
    )


def test_alternatives_and_accounts(make_deb: MakeDeb) -> None:
    members = _by_name(rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL)))
    assert members["usr/bin/tl"][0].linkname == "/etc/alternatives/tl"
    assert members["etc/alternatives/tl"][0].linkname == "/bin/tool"
    # The slave's man page is excluded, so it gets no link; the record still names it.
    assert "usr/share/man/man1/tl.1.gz" not in members
    assert members["var/lib/dpkg/alternatives/tl"][1] == (
        b"auto\n/usr/bin/tl\ntl.1.gz\n/usr/share/man/man1/tl.1.gz\n\n"
        b"/bin/tool\n10\n/usr/share/man/man1/tool.1.gz\n\n"
    )
    assert members["etc/passwd"][1] == (
        b"root:x:0:0:root:/root:/bin/bash\nmail:x:8:8:mail:/var/mail:/usr/sbin/nologin\n"
    )
    shadow, shadow_data = members["etc/shadow"]
    assert (shadow.mode, shadow.uid, shadow.gid) == (0o640, 0, 42)
    assert shadow_data == b"root:*::0:99999:7:::\nmail:*::0:99999:7:::\n"
    assert members["etc/gshadow"][1] == b"root:*::\nmail:*::\nshadow:*::\nstaff:*::\n"


def test_a_base_passwd_without_its_master_files_is_named(make_deb: MakeDeb) -> None:
    without_passwd = DebSpec(
        "base-passwd",
        "3.6.1",
        entries=[e for e in BASE_PASSWD.entries if not e.path.endswith("passwd.master")],
    )
    with pytest.raises(
        DebError,
        match=r"base-passwd 3.6.1 has no regular file /usr/share/base-passwd/passwd.master",
    ):
        rootfs_members(_packages(make_deb, without_passwd))


def test_the_same_path_shipped_differently_is_an_error(make_deb: MakeDeb) -> None:
    other = DebSpec(
        "other",
        entries=[directory("usr"), directory("usr/bin"), file("usr/bin/tool", b"different")],
    )
    with pytest.raises(TreeError, match=r"/usr/bin/tool is shipped by both tool and other"):
        rootfs_members(_packages(make_deb, BASE_PASSWD, TOOL, other))


def test_a_download_that_is_not_the_locked_package_is_named(
    make_deb: MakeDeb, tmp_path: Path
) -> None:
    locked, path = make_deb(TOOL)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(
        DebError, match=r"tool_2.0-1_amd64.deb is not the locked tool 2.0-1: its sha256 is"
    ):
        read_deb(locked, path)
