from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import stat
import tarfile
from pathlib import Path

import pytest

from imagetool.tarlayer import (
    GZIP_LAYER_MEDIA_TYPE,
    LayerBlob,
    LayerError,
    LayerMember,
    _GzipTarSink,
    members_from_directory,
    write_layer,
)


def regular(
    name: str, data: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0, gname: str = "root"
):
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.uname, info.gname = (
        mode,
        uid,
        gid,
        "root" if uid == 0 else "",
        gname,
    )
    info.size = len(data)
    return info, data


def special(name: str, entry_type: bytes, *, linkname: str = "", mode: int = 0o755) -> LayerMember:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uname, info.gname = (
        entry_type,
        linkname,
        mode,
        "root",
        "root",
    )
    return info, None


def sample_members() -> list[LayerMember]:
    return [
        special("usr/bin", tarfile.DIRTYPE),
        regular("usr/bin/tool", b"#!/bin/sh\necho tool\n", mode=0o755),
        special("usr/bin/tool-alias", tarfile.LNKTYPE, linkname="usr/bin/tool"),
        special("usr/bin/sh", tarfile.SYMTYPE, linkname="dash", mode=0o777),
        regular("etc/shadow", b"root:*:19000:0:99999:7:::\n", mode=0o640, gid=42, gname="shadow"),
        regular("app/" + "deep/" * 30 + "module.py", b"print('long path')\n"),
        regular("app/données.txt", b"non-ASCII name\n"),
        special("tmp", tarfile.DIRTYPE, mode=0o1777),
    ]


def build(members: list[LayerMember], path: Path, *, mtime: int = 0) -> bytes:
    write_layer(members, path, mtime=mtime)
    return path.read_bytes()


def read_tar(blob: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(blob, "r:gz") as archive:
        return archive.getmembers()


def test_golden_digest(tmp_path: Path) -> None:
    # Changes when the layer format changes (tar headers, ISA-L version, level or chunking):
    # every image digest changes with it, so such a change must be deliberate.
    blob = write_layer(sample_members(), tmp_path / "layer.tar.gz", mtime=1_700_000_000)
    assert blob == LayerBlob(
        digest="sha256:04134a1a4284be2aee6a4e23cee70a887b07e5239755efddf26299af3a3bd34f",
        diff_id="sha256:340f328a16dd6300779e4f76e096a4aa8080aab1855863978bb7ae8000958710",
        size=1150,
        media_type=GZIP_LAYER_MEDIA_TYPE,
    )


def test_digests_describe_the_written_blob(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    blob = write_layer(sample_members(), path, mtime=0)
    data = path.read_bytes()
    assert blob.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert blob.diff_id == f"sha256:{hashlib.sha256(gzip.decompress(data)).hexdigest()}"
    assert blob.size == len(data)


def test_same_members_in_any_order_give_the_same_bytes(tmp_path: Path) -> None:
    first = build(sample_members(), tmp_path / "a")
    shuffled = sample_members()
    random.Random(7).shuffle(shuffled)
    assert build(shuffled, tmp_path / "b") == first
    assert build(sample_members(), tmp_path / "c") == first


def test_mtime_is_the_only_time(tmp_path: Path) -> None:
    first = build(sample_members(), tmp_path / "a", mtime=123)
    assert {member.mtime for member in read_tar(tmp_path / "a")} == {123}
    assert build(sample_members(), tmp_path / "b", mtime=124) != first


def test_entries_are_sorted_with_missing_parents_added(tmp_path: Path) -> None:
    build(sample_members(), tmp_path / "layer.tar.gz")
    members = read_tar(tmp_path / "layer.tar.gz")
    names = [member.name for member in members]
    assert names == sorted(names, key=lambda name: name.split("/"))
    assert names[:3] == ["app", "app/deep", "app/deep/deep"]
    assert "etc" in names and "usr" in names
    implied = next(member for member in members if member.name == "etc")
    assert (implied.type, implied.mode, implied.uid, implied.gid, implied.uname, implied.gname) == (
        tarfile.DIRTYPE,
        0o755,
        0,
        0,
        "root",
        "root",
    )


def test_ownership_and_modes_are_kept_as_given(tmp_path: Path) -> None:
    build(sample_members(), tmp_path / "layer.tar.gz")
    members = {member.name: member for member in read_tar(tmp_path / "layer.tar.gz")}
    shadow = members["etc/shadow"]
    assert (shadow.mode, shadow.uid, shadow.gid, shadow.uname, shadow.gname) == (
        0o640,
        0,
        42,
        "root",
        "shadow",
    )
    assert members["tmp"].mode == 0o1777
    assert members["usr/bin/tool"].mode == 0o755


def test_links_are_preserved(tmp_path: Path) -> None:
    build(sample_members(), tmp_path / "layer.tar.gz")
    with tarfile.open(tmp_path / "layer.tar.gz", "r:gz") as archive:
        alias = archive.getmember("usr/bin/tool-alias")
        shell = archive.getmember("usr/bin/sh")
        assert (alias.type, alias.linkname) == (tarfile.LNKTYPE, "usr/bin/tool")
        assert (shell.type, shell.linkname) == (tarfile.SYMTYPE, "dash")
        alias_file = archive.extractfile(alias)
        assert alias_file is not None
        assert alias_file.read() == b"#!/bin/sh\necho tool\n"


def test_a_hard_link_that_sorts_first_holds_the_data(tmp_path: Path) -> None:
    members = [regular("bin/z", b"data"), special("bin/a", tarfile.LNKTYPE, linkname="bin/z")]
    build(members, tmp_path / "layer.tar.gz")
    by_name = {member.name: member for member in read_tar(tmp_path / "layer.tar.gz")}
    assert (by_name["bin/a"].type, by_name["bin/a"].size) == (tarfile.REGTYPE, 4)
    assert (by_name["bin/z"].type, by_name["bin/z"].linkname) == (tarfile.LNKTYPE, "bin/a")


def test_host_data_in_pax_headers_is_dropped(tmp_path: Path) -> None:
    info, data = regular("usr/bin/ping", b"elf")
    info.pax_headers = {
        "atime": "1700000000.5",
        "ctime": "1700000000.5",
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
    }
    build([(info, data)], tmp_path / "layer.tar.gz")
    ping = read_tar(tmp_path / "layer.tar.gz")[-1]
    assert ping.name == "usr/bin/ping"
    assert ping.pax_headers == {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}


def test_only_long_or_non_ascii_paths_get_pax_headers(tmp_path: Path) -> None:
    build(sample_members(), tmp_path / "layer.tar.gz")
    for member in read_tar(tmp_path / "layer.tar.gz"):
        stored = member.name + ("/" if member.isdir() else "")
        needs_pax = len(stored) > 100 or not stored.isascii()
        assert member.pax_headers == ({"path": stored} if needs_pax else {}), member.name


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    data = build(sample_members(), tmp_path / "layer.tar.gz", mtime=1_700_000_000)
    magic, method, flags, mtime = data[:2], data[2], data[3], data[4:8]
    assert (magic, method, flags, mtime) == (b"\x1f\x8b", 8, 0, b"\0\0\0\0")


def test_compression_does_not_depend_on_how_the_stream_is_split() -> None:
    stream = bytes(random.Random(1).getrandbits(8) for _ in range(1 << 16)) * 40

    def compressed(pieces: list[bytes]) -> bytes:
        out = io.BytesIO()
        sink = _GzipTarSink(out)
        for piece in pieces:
            sink.write(piece)
        sink.finish()
        return out.getvalue()

    whole = compressed([stream])
    cuts = sorted(random.Random(2).sample(range(1, len(stream)), 50))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert compressed(pieces) == whole
    assert gzip.decompress(whole) == stream


@pytest.mark.parametrize(
    "name, normalized",
    [
        pytest.param("./etc/hosts", "etc/hosts", id="dot-slash"),
        pytest.param("/etc/hosts", "etc/hosts", id="absolute"),
        pytest.param("etc//hosts/", "etc/hosts", id="doubled-and-trailing-slash"),
    ],
)
def test_paths_are_normalized(tmp_path: Path, name: str, normalized: str) -> None:
    build([regular(name, b"x")], tmp_path / "layer.tar.gz")
    assert [member.name for member in read_tar(tmp_path / "layer.tar.gz")] == ["etc", normalized]


def test_identical_duplicates_collapse(tmp_path: Path) -> None:
    once = build([regular("etc/hosts", b"x")], tmp_path / "once")
    assert (
        build([regular("etc/hosts", b"x"), regular("./etc/hosts", b"x")], tmp_path / "twice")
        == once
    )


@pytest.mark.parametrize(
    "members, message",
    [
        pytest.param(
            [regular("etc/hosts", b"x"), regular("etc/hosts", b"y")],
            "'etc/hosts' is in the layer twice",
            id="duplicate",
        ),
        pytest.param(
            [regular("../etc/passwd", b"x")],
            "does not name a path inside the layer",
            id="parent-escape",
        ),
        pytest.param([regular("/", b"x")], "does not name a path inside the layer", id="root"),
        pytest.param(
            [(tarfile.TarInfo("etc/hosts"), None)], "data must be given", id="file-without-data"
        ),
        pytest.param(
            [(special("etc", tarfile.DIRTYPE)[0], b"x")],
            "data must be given",
            id="directory-with-data",
        ),
        pytest.param(
            [special("bin/a", tarfile.LNKTYPE, linkname="bin/b")],
            "points to 'bin/b', which is not in",
            id="dangling",
        ),
        pytest.param(
            [
                special("a", tarfile.LNKTYPE, linkname="b"),
                special("b", tarfile.LNKTYPE, linkname="a"),
            ],
            "cycle",
            id="link-cycle",
        ),
        pytest.param(
            [special("bin", tarfile.SYMTYPE, linkname="usr/bin"), regular("bin/ls", b"x")],
            "needs 'bin' to be a directory, but it is a symbolic link",
            id="parent-not-directory",
        ),
        pytest.param(
            [special("dev/x", tarfile.GNUTYPE_SPARSE)], "cannot hold", id="unsupported-type"
        ),
    ],
)
def test_malformed_members_are_errors(
    tmp_path: Path, members: list[LayerMember], message: str
) -> None:
    with pytest.raises(LayerError, match=message):
        write_layer(members, tmp_path / "layer.tar.gz", mtime=0)


def test_large_files_round_trip(tmp_path: Path) -> None:
    big = os.urandom(3 * (1 << 20) + 12345)
    build([regular("big", big), regular("small", b"tail")], tmp_path / "layer.tar.gz")
    with tarfile.open(tmp_path / "layer.tar.gz", "r:gz") as archive:
        big_file, small_file = archive.extractfile("big"), archive.extractfile("small")
        assert big_file is not None and small_file is not None
        assert big_file.read() == big
        assert small_file.read() == b"tail"


def make_tree(root: Path, *, umask: int, mtime: int) -> Path:
    previous = os.umask(umask)
    try:
        (root / "pkg" / "sub").mkdir(parents=True)
        (root / "pkg" / "__init__.py").write_text("")
        (root / "pkg" / "sub" / "data.txt").write_text("data\n")
        script = root / "run.sh"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o777 & ~umask)
        (root / "link").symlink_to("pkg/sub/data.txt")
    finally:
        os.umask(previous)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_directory_layers_do_not_depend_on_the_host(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "checkout-a", umask=0o022, mtime=1_000)
    second = make_tree(tmp_path / "elsewhere" / "checkout-b", umask=0o077, mtime=2_000_000_000)
    if os.geteuid() == 0:
        for path in [second, *second.rglob("*")]:
            os.chown(path, 1234, 5678, follow_symlinks=False)
    layer_a = build(list(members_from_directory(first, prefix="app/")), tmp_path / "a.tar.gz")
    layer_b = build(list(members_from_directory(second, prefix="app/")), tmp_path / "b.tar.gz")
    assert layer_a == layer_b
    assert b"checkout" not in gzip.decompress(layer_a)


def test_directory_members(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", umask=0o022, mtime=0)
    (root / "private").write_text("secret-looking but not our concern here")
    (root / "private").chmod(0o600)
    members = {
        info.name: (info, data)
        for info, data in members_from_directory(root, prefix="/opt/app/", uid=1000, gid=1000)
    }
    assert list(members) == [
        "opt/app",
        "opt/app/link",
        "opt/app/pkg",
        "opt/app/pkg/__init__.py",
        "opt/app/pkg/sub",
        "opt/app/pkg/sub/data.txt",
        "opt/app/private",
        "opt/app/run.sh",
    ]
    modes = {name: info.mode for name, (info, _) in members.items()}
    assert modes["opt/app"] == modes["opt/app/pkg"] == modes["opt/app/run.sh"] == 0o755
    assert modes["opt/app/private"] == modes["opt/app/pkg/__init__.py"] == 0o644
    link, _ = members["opt/app/link"]
    assert (link.type, link.linkname) == (tarfile.SYMTYPE, "pkg/sub/data.txt")
    owners = {(info.uid, info.gid, info.uname, info.gname) for info, _ in members.values()}
    assert owners == {(1000, 1000, "", "")}
    assert members["opt/app/pkg/sub/data.txt"][1] == b"data\n"


def test_an_empty_prefix_puts_the_contents_at_the_root(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", umask=0o022, mtime=0)
    names = [info.name for info, _ in members_from_directory(root, prefix="")]
    assert names[0] == "link" and "pkg/sub/data.txt" in names


def test_hard_links_within_the_directory_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "b").write_bytes(b"shared")
    os.link(root / "b", root / "a")
    members = {info.name: info for info, _ in members_from_directory(root, prefix="")}
    assert (members["a"].type, members["b"].type, members["b"].linkname) == (
        tarfile.REGTYPE,
        tarfile.LNKTYPE,
        "a",
    )


def test_hard_links_to_outside_the_directory_are_ignored(tmp_path: Path) -> None:
    # Pants hardlinks large sandbox inputs from its store, uv from its cache.
    store = tmp_path / "store"
    store.write_bytes(b"shared")
    root = tmp_path / "src"
    root.mkdir()
    os.link(store, root / "a")
    os.link(store, root / "b")
    members = list(members_from_directory(root, prefix=""))
    assert [(info.name, info.type, data) for info, data in members] == [
        ("a", tarfile.REGTYPE, b"shared"),
        ("b", tarfile.REGTYPE, b"shared"),
    ]


def test_custom_modes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src", umask=0o022, mtime=0)
    members = members_from_directory(
        root, prefix="", mode_for=lambda name, st_mode: 0o700 if stat.S_ISDIR(st_mode) else 0o600
    )
    assert {info.name: info.mode for info, _ in members}["pkg"] == 0o700


def test_special_files_are_errors(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with pytest.raises(LayerError, match="'pipe' .* is neither a regular file"):
        list(members_from_directory(root, prefix=""))
