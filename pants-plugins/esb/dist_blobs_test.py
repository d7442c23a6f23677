from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from esb.dist_blobs import CorruptBlobError, missing_blobs, write_blob
from esb.dist_files import remove_abandoned_partials

CONTENT = b"a layer" * 1000
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def test_a_blob_is_written_whole_under_its_digest(tmp_path: Path) -> None:
    write_blob(tmp_path / "sha256", DIGEST, CONTENT)
    assert (tmp_path / "sha256" / DIGEST).read_bytes() == CONTENT
    # No temporary file is left beside it.
    assert os.listdir(tmp_path / "sha256") == [DIGEST]


def test_bytes_that_do_not_match_the_digest_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    corrupt = bytearray(CONTENT)
    corrupt[10] ^= 0xFF
    with pytest.raises(CorruptBlobError, match=f"blob sha256:{DIGEST} \\(7000 bytes\\) hashes to"):
        write_blob(tmp_path, DIGEST, bytes(corrupt))
    assert os.listdir(tmp_path) == []


def test_missing_blobs_are_the_absent_ones_and_those_of_another_size(tmp_path: Path) -> None:
    present, empty, absent = "a" * 64, "b" * 64, "c" * 64
    (tmp_path / present).write_bytes(b"12345")
    (tmp_path / empty).write_bytes(b"")
    assert missing_blobs(tmp_path, {present: 5, empty: 5, absent: 5}) == [empty, absent]


def test_a_present_blob_is_never_rewritten(tmp_path: Path) -> None:
    write_blob(tmp_path, DIGEST, CONTENT)
    inode = (tmp_path / DIGEST).stat().st_ino
    assert missing_blobs(tmp_path, {DIGEST: len(CONTENT)}) == []
    assert (tmp_path / DIGEST).stat().st_ino == inode


def test_a_reader_never_sees_a_partial_blob_while_it_is_rewritten(tmp_path: Path) -> None:
    """A blob replaced (e.g. an empty one left by an older writer) is never seen short."""
    write_blob(tmp_path, DIGEST, CONTENT)
    seen: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(len((tmp_path / DIGEST).read_bytes()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(200):
            write_blob(tmp_path, DIGEST, CONTENT)
    finally:
        done.set()
        reader.join()
    assert seen == {len(CONTENT)}


def test_a_write_that_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / DIGEST).mkdir()  # the rename onto a directory fails
    with pytest.raises(OSError):
        write_blob(tmp_path, DIGEST, CONTENT)
    assert os.listdir(tmp_path) == [DIGEST]


def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f".{DIGEST}.4000001.x1y2.partial"
    live = tmp_path / f".{DIGEST}.{os.getpid()}.z3w4.partial"
    blob = tmp_path / DIGEST
    for path in (dead, live, blob):
        path.write_bytes(b"")
    assert remove_abandoned_partials(tmp_path, live_pids=[os.getpid()]) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, blob.name])
