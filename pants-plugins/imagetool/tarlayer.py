"""Deterministic tar layers: the same members give the same bytes on any machine, any day.

A layer is a POSIX (pax) tar: a ustar header per entry, preceded by a pax extended header only
where a field does not fit ustar (a long or non-ASCII path, a large size), then gzip-compressed
with ISA-L. What makes it reproducible:

- Entries are sorted by path components (a directory, then everything under it), and a
  missing parent directory is added as 0755 root:root.
- Every mtime is the caller's `mtime`. No atime, ctime or other host data goes into pax headers;
  of a member's own pax records only `SCHILY.xattr.*` (e.g. file capabilities) are kept.
- Paths are normalised (`./etc/x`, `/etc/x` and `etc//x` are all `etc/x`). A path may appear
  more than once only if every occurrence is identical, mtime aside; otherwise `LayerError`.
- Hard links are re-pointed so that, of each group, the path that comes first in the archive
  holds the data and the others link to it (a link must follow its target in a tar).
- Ownership (ids and names) and permission bits are kept as given: normalising them is the
  caller's choice, because a Debian base keeps its own (`/etc/shadow` is root:shadow 0640).
- The gzip header carries no file name and mtime 0, and the compressor level and chunking are
  fixed (see `_CHUNK_SIZE`), so the blob's digest depends only on the members and `mtime`.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import os
import stat
import struct
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Callable, Optional, cast

from isal import isal_zlib

from imagetool.errors import ToolError
from imagetool.oci import GZIP_LAYER_MEDIA_TYPE

LayerMember = tuple[tarfile.TarInfo, Optional[bytes]]
"""A tar header, with the file's data for a regular file and None for any other type."""

WHITEOUT = ".wh."
"""The name prefix of an OCI whiteout: `.wh.<name>` deletes `<name>` of the layers below."""
OPAQUE_WHITEOUT = ".wh..wh..opq"
"""An opaque whiteout: what the layers below hold in its directory is hidden."""

ModeFor = Callable[[str, int], int]
"""Given an entry's path in the layer and its `st_mode` on disk, the permission bits to store."""

# ISA-L level 1 (of 0-3): several times faster than tarfile with zlib's level 6 for a slightly
# larger blob; levels 2 and 3 save little more, level 0 costs size for no speed.
COMPRESSION_LEVEL = 1
_MEM_LEVEL = 8
# ISA-L's output depends on how its input is split into calls, so the tar stream is fed to it
# in chunks of exactly this size (the last one shorter). Changing it changes every digest.
_CHUNK_SIZE = 1 << 20
# Magic, deflate, no flags, mtime 0, no extra flags, OS "unknown": what `gzip.compress(data,
# mtime=0)` writes, and nothing that depends on the machine or the file.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)

_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_TYPE_NAMES = {
    tarfile.REGTYPE: "regular file",
    tarfile.LNKTYPE: "hard link",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.DIRTYPE: "directory",
    tarfile.FIFOTYPE: "FIFO",
}
_KEPT_PAX_PREFIX = "SCHILY.xattr."


class LayerError(ToolError, ValueError):
    """The members cannot form a well-defined layer; the message names the path and the reason."""


@dataclass(frozen=True)
class LayerBlob:
    digest: str
    """`sha256:<hex>` of the compressed blob."""
    diff_id: str
    """`sha256:<hex>` of the uncompressed tar."""
    size: int
    """Size of the compressed blob in bytes."""
    media_type: str


def write_layer(members: Iterable[LayerMember], out_path: Path, *, mtime: int) -> LayerBlob:
    """Write `members` as a gzip-compressed tar layer to `out_path` (see the module's rules).

    The members' data is held in memory until written (the order of the input is not the order
    of the archive); the tar and the gzip stream are never held whole, and both digests are
    computed while writing.
    """
    if not 0 <= mtime < 8**11:
        raise LayerError(f"mtime {mtime} does not fit a tar header (0 <= mtime < 8**11).")
    entries = _collect(members)
    _link_hard_links(entries)
    _add_missing_parents(entries)
    with open(out_path, "wb") as out:
        sink = _GzipTarSink(out)
        for name in sorted(entries, key=_path_key):
            info, data = entries[name]
            info.mtime = mtime
            sink.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            if data:
                sink.write(data)
                sink.write(b"\0" * (-len(data) % tarfile.BLOCKSIZE))
        sink.write(_END_OF_ARCHIVE)
        return sink.finish()


@contextmanager
def read_layer_members(blob: Path) -> Iterator[Iterator[LayerMember]]:
    """The members of a gzipped layer, streamed: each member's data is read only when the
    iteration reaches it, and is `None` for anything but a regular file."""
    with gzip.open(blob) as stream, tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as tar:
        yield ((info, _file_data(tar, info) if info.isfile() else None) for info in tar)


def _file_data(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(info)
    assert stream is not None, f"{info.name} is a regular file"
    return stream.read()


def portable_mode(name: str, st_mode: int) -> int:
    """The mode a checkout has on every machine: only the owner's executable bit counts.

    Git records nothing else, so the other bits of a checked-out file come from the umask of
    whoever checked it out, and Pants materialises large sandbox inputs read-only; keeping them
    would make the layer differ between machines.
    """
    if stat.S_ISLNK(st_mode):
        return 0o777
    if stat.S_ISDIR(st_mode) or st_mode & stat.S_IXUSR:
        return 0o755
    return 0o644


def members_from_directory(
    root: Path,
    *,
    prefix: str,
    uid: int = 0,
    gid: int = 0,
    mode_for: ModeFor = portable_mode,
) -> Iterator[LayerMember]:
    """The files under `root` as layer members named `prefix` + their path relative to `root`.

    `prefix` (e.g. `app/`, or `""` for the image's root) is itself a directory member unless
    empty. Members come in sorted order; file data is read lazily. Symbolic links stay links,
    with their target verbatim. Every member is owned by `uid`:`gid`, named `root` where the id
    is 0 and unnamed otherwise (no account name of the host leaks); permission bits are
    `mode_for(path, st_mode)`. Only directories, regular files and symbolic links can be read.

    Regular files that share an inode become hard links to the first of them, but only when
    every link of the inode is under `root`. A link from outside says nothing about the tree:
    Pants hardlinks large sandbox inputs from its store when both are on one filesystem, and uv
    hardlinks from its cache, so honouring it would make the layer depend on the machine.
    """
    base = _archive_path(prefix) if prefix.strip("/") else ""
    entries = list(_directory_entries(root, base))
    links_under_root = Counter(_inode(st) for _, _, st in entries if _is_multiply_linked_file(st))
    first_path_of_inode: dict[tuple[int, int], str] = {}
    for path, name, st in entries:
        info = tarfile.TarInfo(name)
        info.mode = mode_for(name, st.st_mode)
        info.uid, info.gid = uid, gid
        info.uname, info.gname = _account_name(uid), _account_name(gid)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            yield info, None
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            yield info, None
        else:
            first_path = name
            if _is_multiply_linked_file(st) and links_under_root[_inode(st)] == st.st_nlink:
                first_path = first_path_of_inode.setdefault(_inode(st), name)
            if first_path != name:
                info.type = tarfile.LNKTYPE
                info.linkname = first_path
                yield info, None
            else:
                data = path.read_bytes()
                info.size = len(data)
                yield info, data


def _directory_entries(root: Path, base: str) -> Iterator[tuple[Path, str, os.stat_result]]:
    """`(path on disk, path in the layer, lstat)` of `root` (if `base` is set) and all under it."""
    if base:
        yield root, base, os.stat(root)
    with os.scandir(root) as scan:
        children = sorted(scan, key=lambda entry: entry.name)
    for child in children:
        path = Path(child.path)
        name = f"{base}/{child.name}" if base else child.name
        st = child.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            yield from _directory_entries(path, name)
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            yield path, name, st
        else:
            raise LayerError(
                f"{name!r} (from {path}) is neither a regular file, a directory nor a symbolic "
                "link; such files cannot be copied into a layer."
            )


def _is_multiply_linked_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_nlink > 1


def _inode(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _account_name(account_id: int) -> str:
    return "root" if account_id == 0 else ""


def _archive_path(name: str) -> str:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise LayerError(f"{name!r} does not name a path inside the layer.")
    return "/".join(parts)


def _path_key(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


def _collect(members: Iterable[LayerMember]) -> dict[str, LayerMember]:
    entries: dict[str, LayerMember] = {}
    for info, data in members:
        entry = _normalized(info, data)
        name = entry[0].name
        previous = entries.setdefault(name, entry)
        if previous is not entry and not _same_entry(previous, entry):
            raise LayerError(
                f"{name!r} is in the layer twice, as a {_type_name(previous[0])} and as a "
                f"{_type_name(entry[0])}, with different metadata or content; give each path once."
            )
    return entries


def _normalized(info: tarfile.TarInfo, data: bytes | None) -> LayerMember:
    """A fresh header holding only what the layer keeps of `info`, so no stray field leaks."""
    name = _archive_path(info.name)
    entry_type = tarfile.REGTYPE if info.type in _REGULAR_TYPES else info.type
    if entry_type not in _TYPE_NAMES:
        raise LayerError(f"{name!r} has the tar type {info.type!r}, which a layer cannot hold.")
    if (entry_type == tarfile.REGTYPE) != (data is not None):
        raise LayerError(
            f"{name!r} is a {_TYPE_NAMES[entry_type]}: data must be given for regular files, "
            "and only for them."
        )
    normalized = tarfile.TarInfo(name)
    normalized.type = entry_type
    normalized.mode = stat.S_IMODE(info.mode)
    normalized.uid, normalized.gid = info.uid, info.gid
    normalized.uname, normalized.gname = info.uname, info.gname
    normalized.size = len(data) if data is not None else 0
    if entry_type == tarfile.LNKTYPE:
        normalized.linkname = _archive_path(info.linkname)
    elif entry_type == tarfile.SYMTYPE:
        if not info.linkname:
            raise LayerError(f"The symbolic link {name!r} has an empty target.")
        normalized.linkname = info.linkname
    elif entry_type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        normalized.devmajor, normalized.devminor = info.devmajor, info.devminor
    normalized.pax_headers = {
        key: info.pax_headers[key]
        for key in sorted(info.pax_headers)
        if key.startswith(_KEPT_PAX_PREFIX)
    }
    return normalized, data


def _same_entry(a: LayerMember, b: LayerMember) -> bool:
    (a_info, a_data), (b_info, b_data) = a, b
    return (a_info.get_info(), a_info.pax_headers, a_data) == (
        b_info.get_info(),
        b_info.pax_headers,
        b_data,
    )


def _type_name(info: tarfile.TarInfo) -> str:
    return _TYPE_NAMES[info.type]


def _link_hard_links(entries: dict[str, LayerMember]) -> None:
    links_by_source: dict[str, list[str]] = {}
    for name, (info, _) in entries.items():
        if info.type == tarfile.LNKTYPE:
            links_by_source.setdefault(_hard_link_source(entries, name), []).append(name)
    for source, links in links_by_source.items():
        source_info, data = entries[source]
        first, *others = sorted([source, *links], key=_path_key)
        holder = copy.copy(source_info)
        holder.name = first
        entries[first] = (holder, data)
        for other in others:
            link = copy.copy(source_info)
            link.name, link.type, link.linkname, link.size = other, tarfile.LNKTYPE, first, 0
            link.pax_headers = {}
            entries[other] = (link, None)


def _hard_link_source(entries: dict[str, LayerMember], name: str) -> str:
    """The non-link entry that the hard link `name` leads to, through any chain of links."""
    visited = {name}
    current = name
    while entries[current][0].type == tarfile.LNKTYPE:
        target = entries[current][0].linkname
        if target not in entries:
            raise LayerError(
                f"The hard link {current!r} points to {target!r}, which is not in the layer."
            )
        if target in visited:
            raise LayerError(f"The hard link {name!r} is part of a cycle of hard links.")
        visited.add(target)
        current = target
    if entries[current][0].type == tarfile.DIRTYPE:
        raise LayerError(f"The hard link {name!r} points to the directory {current!r}.")
    return current


def _add_missing_parents(entries: dict[str, LayerMember]) -> None:
    for name in list(entries):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            existing = entries.get(parent)
            if existing is None:
                entries[parent] = (_implied_directory(parent), None)
            elif existing[0].type != tarfile.DIRTYPE:
                raise LayerError(
                    f"{name!r} needs {parent!r} to be a directory, but it is a {_type_name(existing[0])} "
                    "in the layer."
                )


def _implied_directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.uname = info.gname = "root"
    return info


class _GzipTarSink:
    """Compresses a tar stream into `out` as gzip, hashing both streams on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._tar_sha256 = hashlib.sha256()
        self._tar_size = 0
        self._crc32 = 0
        self._blob_sha256 = hashlib.sha256()
        self._blob_size = 0
        self._partial_chunk = bytearray()
        self._compressor = isal_zlib.compressobj(
            COMPRESSION_LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS, _MEM_LEVEL
        )
        self._emit(_GZIP_HEADER)

    def write(self, data: bytes) -> None:
        self._tar_sha256.update(data)
        self._tar_size += len(data)
        self._crc32 = isal_zlib.crc32(data, self._crc32)
        remaining = memoryview(data)
        if self._partial_chunk:
            room = _CHUNK_SIZE - len(self._partial_chunk)
            self._partial_chunk += remaining[:room]
            remaining = remaining[room:]
            if len(self._partial_chunk) < _CHUNK_SIZE:
                return
            self._emit(self._compressor.compress(self._partial_chunk))
            self._partial_chunk.clear()
        while len(remaining) >= _CHUNK_SIZE:
            self._emit(self._compressor.compress(remaining[:_CHUNK_SIZE]))
            remaining = remaining[_CHUNK_SIZE:]
        self._partial_chunk += remaining

    def finish(self) -> LayerBlob:
        self._emit(self._compressor.compress(self._partial_chunk))
        self._emit(self._compressor.flush())
        self._emit(struct.pack("<II", self._crc32, self._tar_size & 0xFFFFFFFF))
        return LayerBlob(
            digest=f"sha256:{self._blob_sha256.hexdigest()}",
            diff_id=f"sha256:{self._tar_sha256.hexdigest()}",
            size=self._blob_size,
            media_type=GZIP_LAYER_MEDIA_TYPE,
        )

    def _emit(self, compressed: bytes) -> None:
        self._blob_sha256.update(compressed)
        self._blob_size += len(compressed)
        self._out.write(compressed)
