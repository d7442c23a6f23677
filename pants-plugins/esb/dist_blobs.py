"""The shared blob directory under `dist/`: each blob written once, whole, and only if it matches
its digest.

Pants' own `package` writes its outputs in place (truncating a file, then writing it), so a blob
that every image's layout links to would be empty for a moment on every run, and a run killed
mid-write would leave it short. Blobs are content-addressed and never change, so they are written
here instead: a blob already present with its size is left alone; a missing one is written by
`esb.dist_files.write_atomically`, which readers see as one step. Its content is
checked against its name first, because the bytes come from Pants' local store, and a corrupt
entry there must fail the build rather than land in `dist/` under a digest it does not have.

No Pants imports: the package rule calls these with the bytes it read from the store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

from esb.dist_files import write_atomically


class CorruptBlobError(Exception):
    """A blob's bytes do not match its digest."""


def missing_blobs(directory: Path, sizes: Mapping[str, int]) -> list[str]:
    """The hex digests among `sizes` (digest → size in bytes) whose file in `directory` is absent
    or has another size (e.g. an empty one left by a tool that wrote in place)."""
    # `os.stat` of a string: every image of every run checks each of its blobs, and a `Path`
    # per blob costs more than the stat.
    prefix = f"{directory}{os.sep}"
    missing = []
    for hex_digest, size in sorted(sizes.items()):
        try:
            if os.stat(prefix + hex_digest).st_size == size:
                continue
        except FileNotFoundError:
            pass
        missing.append(hex_digest)
    return missing


def check_blob(hex_digest: str, content: bytes) -> None:
    """Raise CorruptBlobError unless `content` hashes to `hex_digest`."""
    actual = hashlib.sha256(content).hexdigest()
    if actual != hex_digest:
        raise CorruptBlobError(
            f"blob sha256:{hex_digest} ({len(content)} bytes) hashes to sha256:{actual}"
        )


def write_blob(directory: Path, hex_digest: str, content: bytes) -> None:
    """Write a checked blob to `directory/hex_digest` by rename, so that no reader sees it partial.

    Two writers of the same blob (concurrent runs) both succeed: the content is the same, and
    whichever rename comes last replaces an identical file.
    """
    check_blob(hex_digest, content)
    write_atomically(directory / hex_digest, content)
