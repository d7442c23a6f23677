from __future__ import annotations

import os
from pathlib import Path

import pytest

from esb.dist_files import (
    link_if_changed,
    remove_abandoned_partials,
    remove_all_but,
    write_atomically,
    write_if_changed,
)

DEAD_PID = 4000001


def test_a_file_with_the_same_bytes_and_mode_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "api.image.json"
    assert write_if_changed(path, b"{}")
    inode = path.stat().st_ino
    assert not write_if_changed(path, b"{}")
    assert path.stat().st_ino == inode
    assert os.listdir(tmp_path) == ["api.image.json"]


@pytest.mark.parametrize(
    "content, executable", [(b'{"a": 1}', False), (b"{}", True)], ids=["bytes", "mode"]
)
def test_a_file_that_differs_is_replaced_by_rename(
    tmp_path: Path, content: bytes, executable: bool
) -> None:
    path = tmp_path / "api.image.json"
    write_if_changed(path, b"{}")
    inode = path.stat().st_ino

    assert write_if_changed(path, content, executable=executable)

    assert path.read_bytes() == content
    assert bool(path.stat().st_mode & 0o111) == executable
    # A new file renamed into place, not the old one rewritten: a reader sees one or the other.
    assert path.stat().st_ino != inode
    assert os.listdir(tmp_path) == ["api.image.json"]


def test_a_directory_or_a_link_in_a_files_place_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "index.json").mkdir()
    (tmp_path / "index.json" / "stray").write_text("x")
    (tmp_path / "other").write_text("not to be touched")
    (tmp_path / "oci-layout").symlink_to("other")

    assert write_if_changed(tmp_path / "index.json", b"{}")
    assert write_if_changed(tmp_path / "oci-layout", b"{}")

    assert (tmp_path / "index.json").read_bytes() == b"{}"
    assert not (tmp_path / "oci-layout").is_symlink()
    assert (tmp_path / "other").read_text() == "not to be touched"


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "index.json").mkdir()
    (tmp_path / "index.json" / "stray").write_text("x")
    with pytest.raises(OSError):
        write_atomically(tmp_path / "index.json", b"{}")
    assert os.listdir(tmp_path) == ["index.json"]


def test_a_link_is_made_once_and_replaces_a_directory_or_another_link(tmp_path: Path) -> None:
    blobs = tmp_path / "api.oci" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "sha256").mkdir()

    assert link_if_changed(blobs, "../../blobs")
    assert os.readlink(blobs) == "../../blobs"
    assert not link_if_changed(blobs, "../../blobs")

    assert link_if_changed(blobs, "../blobs")
    assert os.readlink(blobs) == "../blobs"
    assert os.listdir(blobs.parent) == ["blobs"]


def test_remove_all_but_keeps_the_named_and_the_files_of_live_writers(tmp_path: Path) -> None:
    for name in ("index.json", "manifest.json", "stale.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "x").write_text("x")
    live = tmp_path / f".index.json.{os.getpid()}.abc123.partial"
    dead = tmp_path / f".index.json.{DEAD_PID}.abc123.partial"
    live.write_text("")
    dead.write_text("")

    removed = remove_all_but(tmp_path, {"index.json", "manifest.json"})

    assert sorted(path.name for path in removed) == sorted([dead.name, "blobs", "stale.json"])
    assert sorted(os.listdir(tmp_path)) == sorted(["index.json", "manifest.json", live.name])


def test_abandoned_temporary_files_are_removed_for_one_name_or_all(tmp_path: Path) -> None:
    ours = tmp_path / f".api.image.json.{DEAD_PID}.x1y2.partial"
    another = tmp_path / f".worker.image.json.{DEAD_PID}.x1y2.partial"
    link = tmp_path / f".blobs.{DEAD_PID}.link.partial"
    live = tmp_path / f".api.image.json.{os.getpid()}.z3w4.partial"
    hidden = tmp_path / ".api.image.json.notes"
    for path in (ours, another, link, live, hidden):
        path.write_text("")

    assert remove_abandoned_partials(tmp_path, of="api.image.json") == [ours]
    assert sorted(remove_abandoned_partials(tmp_path)) == sorted([another, link])
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, hidden.name])


def test_a_file_found_whole_is_not_read_again_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "api.image.json"
    write_if_changed(path, b'{"a": 1}')
    reads: list[Path] = []
    real_read_bytes = Path.read_bytes

    def counted_read_bytes(self: Path) -> bytes:
        reads.append(self)
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted_read_bytes)
    assert not write_if_changed(path, b'{"a": 1}')
    assert not write_if_changed(path, b'{"a": 1}')
    assert reads == [path]

    # Changed in place to bytes of the same size, its mtime set back: the ctime still moves.
    status = path.stat()
    with path.open("r+b") as file:
        file.write(b'{"a": 2}')
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))

    assert write_if_changed(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'


def test_a_write_creates_missing_directories_and_names_a_file_in_the_way(tmp_path: Path) -> None:
    nested = tmp_path / "a/b/c.json"
    write_atomically(nested, b"{}")
    assert nested.read_bytes() == b"{}"
    assert sorted(p.name for p in nested.parent.iterdir()) == ["c.json"]

    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsError) as error:
        write_atomically(tmp_path / "file/d.json", b"{}")
    assert error.value.filename == str(tmp_path / "file")
