"""`/etc/ld.so.cache`, as `ldconfig` (run by libc-bin's postinst) writes it, computed in Python.

The dynamic linker finds libraries in its default directories without the cache, but
`ctypes.util.find_library` reads the cache (through `ldconfig -p`) and finds nothing without it.

The cache lists, for each shared library in the directories of `/etc/ld.so.conf`, its soname and
the path `<directory>/<soname>`, sorted the way the dynamic linker's binary search expects. This
writes glibc's "new" format (`glibc-ld.so.cache1.1`, the only one glibc ≥ 2.32 writes) without
the optional extension section; `glibc-hwcaps` subdirectories are not scanned.
"""

from __future__ import annotations

import fnmatch
import io
import struct
from dataclasses import dataclass
from functools import cmp_to_key

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from imagetool.debian.tree import Tree

_MAGIC = b"glibc-ld.so.cache1.1"
_LITTLE_ENDIAN = 2
_HEADER = struct.Struct("<20sIIB3xI12x")
_ENTRY = struct.Struct("<iIIIQ")
_ELF_LIBC6 = 0x0003
# ldconfig's flag for each (ELF class, machine): the library's ABI, which the linker matches.
_ABI_FLAGS = {
    (64, "EM_X86_64"): 0x0300 | _ELF_LIBC6,
    (64, "EM_AARCH64"): 0x0A00 | _ELF_LIBC6,
    (32, "EM_386"): _ELF_LIBC6,
}


@dataclass(frozen=True)
class _Library:
    soname: str
    path: str
    flags: int
    order: int


def ld_so_cache(tree: Tree) -> bytes:
    libraries = sorted(_libraries(tree), key=cmp_to_key(_cache_order))
    strings = bytearray()
    entries = bytearray()
    strings_start = _HEADER.size + _ENTRY.size * len(libraries)
    for library in libraries:
        value = strings_start + len(strings)
        # The soname is the path's last component: share its bytes, as ldconfig does.
        key = value + len(library.path) - len(library.soname)
        strings += library.path.encode() + b"\0"
        entries += _ENTRY.pack(library.flags, key, value, 0, 0)
    header = _HEADER.pack(_MAGIC, len(libraries), len(strings), _LITTLE_ENDIAN, 0)
    return header + bytes(entries) + bytes(strings)


def _libraries(tree: Tree) -> list[_Library]:
    libraries: list[_Library] = []
    scanned = set()
    for directory in _configured_directories(tree, "etc/ld.so.conf"):
        real_directory = tree.resolve(directory)
        if real_directory in scanned:
            continue
        scanned.add(real_directory)
        sonames: dict[tuple[str, int], None] = {}
        for path in tree.paths_under(real_directory):
            name = path.rsplit("/", 1)[1]
            if "/" in path[len(real_directory) + 1 :] or not _looks_like_a_library(name):
                continue
            identity = _shared_object(tree, path)
            if identity is not None:
                soname, flags = identity
                sonames.setdefault((soname or name, flags), None)
        for soname, flags in sonames:
            libraries.append(_Library(soname, f"/{directory}/{soname}", flags, len(libraries)))
    return libraries


def _configured_directories(tree: Tree, conf: str) -> list[str]:
    directories = []
    for line in (tree.file_data(conf) or b"").decode().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("include "):
            pattern = line.split(None, 1)[1].lstrip("/")
            parent = pattern.rsplit("/", 1)[0]
            for included in tree.paths_under(parent):
                if fnmatch.fnmatchcase(included, pattern):
                    directories += _configured_directories(tree, included)
        elif line:
            directories.append(line.strip("/"))
    return directories


def _looks_like_a_library(name: str) -> bool:
    return name.startswith(("lib", "ld-")) and ".so" in name


def _shared_object(tree: Tree, path: str) -> tuple[str | None, int] | None:
    """The soname (None if it has none) and ABI flags of an ELF shared object, else None."""
    data = tree.file_data(tree.resolve(path))
    if data is None or not data.startswith(b"\x7fELF"):
        return None
    try:
        elf = ELFFile(io.BytesIO(data))
        flags = _ABI_FLAGS.get((elf.elfclass, elf["e_machine"]))
        if elf["e_type"] != "ET_DYN" or flags is None:
            return None
        dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
        sonames = [tag.soname for tag in dynamic.iter_tags("DT_SONAME")] if dynamic else []
    except ELFError:
        return None
    return (sonames[0] if sonames else None), flags


def _cache_order(a: _Library, b: _Library) -> int:
    """Descending `_dl_cache_libcmp` order of the sonames, then higher flags first."""
    by_name = _dl_cache_libcmp(b.soname, a.soname)
    if by_name:
        return by_name
    if a.flags != b.flags:
        return b.flags - a.flags
    return a.order - b.order


def _dl_cache_libcmp(a: str, b: str) -> int:
    """glibc's comparison of library names: runs of digits compare as numbers."""
    i = j = 0
    while i < len(a):
        if a[i].isdigit():
            if j >= len(b) or not b[j].isdigit():
                return 1
            start_i, start_j = i, j
            while i < len(a) and a[i].isdigit():
                i += 1
            while j < len(b) and b[j].isdigit():
                j += 1
            difference = int(a[start_i:i]) - int(b[start_j:j])
            if difference:
                return difference
        elif j < len(b) and b[j].isdigit():
            return -1
        elif j >= len(b) or a[i] != b[j]:
            return ord(a[i]) - (ord(b[j]) if j < len(b) else 0)
        else:
            i += 1
            j += 1
    return 0 - (ord(b[j]) if j < len(b) else 0)
