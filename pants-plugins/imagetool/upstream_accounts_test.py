"""The service accounts layer of upstream images."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from imagetool.conftest import GROUP, GSHADOW, PASSWD, SHADOW, debian_rootfs, make_layout, regular
from imagetool.debian.tree import ServiceAccount
from imagetool.image_files import load_single_image, read_image_files
from imagetool.tarlayer import LayerMember
from imagetool.upstream_accounts import account_files, accounts_members
from imagetool.upstream_platform import UpstreamImageError


def account_layer(
    tmp_path: Path, layers: Sequence[Sequence[LayerMember]], *accounts: str
) -> dict[str, LayerMember]:
    image = load_single_image(make_layout(tmp_path, layers))
    files = read_image_files(image, account_files)
    members = accounts_members(
        "example@sha256:ab", files, [ServiceAccount.parse(a) for a in accounts]
    )
    return {info.name: (info, data) for info, data in members}


def test_accounts_are_appended_keeping_ownership_and_mode(tmp_path: Path) -> None:
    members = account_layer(tmp_path, [debian_rootfs()], "esb:10001")
    assert sorted(members) == ["etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]
    info, data = members["etc/passwd"]
    assert data == PASSWD + b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
    assert (info.mode, info.uid, info.gid, info.size) == (0o644, 0, 0, len(data))
    assert members["etc/group"][1] == GROUP + b"esb:x:10001:\n"
    shadow_info, shadow = members["etc/shadow"]
    assert shadow == SHADOW + b"esb:*::0:99999:7:::\n"
    assert (shadow_info.mode, shadow_info.gid, shadow_info.gname) == (0o640, 42, "shadow")
    assert members["etc/gshadow"][1] == GSHADOW + b"esb:*::\n"


def test_accounts_without_shadow_files(tmp_path: Path) -> None:
    members = account_layer(
        tmp_path,
        [[regular("etc/passwd", PASSWD), regular("etc/group", GROUP.rstrip(b"\n"))]],
        "esb:10001",
    )
    assert sorted(members) == ["etc/group", "etc/passwd"]
    passwd = members["etc/passwd"][1]
    assert passwd is not None
    assert passwd.endswith(b"\nesb:*:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n")
    assert members["etc/group"][1] == GROUP + b"esb:*:10001:\n"


def test_an_account_the_image_has_is_kept(tmp_path: Path) -> None:
    passwd = PASSWD + b"esb:x:10001:10001:esb service:/nonexistent:/usr/sbin/nologin\n"
    group = GROUP + b"esb:x:10001:\n"
    members = account_layer(
        tmp_path, [[regular("etc/passwd", passwd), regular("etc/group", group)]], "esb:10001"
    )
    assert members == {}


def test_a_clashing_account_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        UpstreamImageError, match=r"nobody:10002 clashes with the user 'nobody' \(65534\)"
    ):
        account_layer(tmp_path, [debian_rootfs()], "esb:10001", "nobody:10002")


def test_accounts_need_account_files(tmp_path: Path) -> None:
    with pytest.raises(
        UpstreamImageError, match=r"(?s)no /etc/passwd and /etc/group .* `service_accounts=\[\]`"
    ):
        account_layer(tmp_path, [[regular("etc/hostname", b"x\n")]], "esb:10001")
