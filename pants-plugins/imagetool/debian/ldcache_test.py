from __future__ import annotations

import struct

import pytest

from imagetool.debian.ldcache import _dl_cache_libcmp, ld_so_cache
from imagetool.debian.tree import Tree, regular_file, symlink

_EM_X86_64, _EM_AARCH64 = 62, 183


def shared_object(soname: str | None, machine: int = _EM_X86_64) -> bytes:
    """A minimal ELF64 shared object: a .dynamic section whose DT_SONAME is `soname`."""
    dynstr = b"\0" + (soname.encode() + b"\0" if soname else b"")
    dynamic = (struct.pack("<qQ", 14, 1) if soname else b"") + struct.pack("<qQ", 0, 0)
    shstrtab = b"\0.dynstr\0.dynamic\0.shstrtab\0"
    body = dynstr + dynamic + shstrtab
    section_headers_offset = 64 + len(body)
    header = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack(
            "<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, section_headers_offset, 0, 64, 56, 0, 64, 4, 3
        )
    )

    def section(
        name: int, kind: int, offset: int, size: int, link: int = 0, entsize: int = 0
    ) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, 0, 0, offset, size, link, 0, 1, entsize)

    sections = (
        section(0, 0, 0, 0)
        + section(1, 3, 64, len(dynstr))
        + section(9, 6, 64 + len(dynstr), len(dynamic), link=1, entsize=16)
        + section(18, 3, 64 + len(dynstr) + len(dynamic), len(shstrtab))
    )
    return header + body + sections


def read_cache(cache: bytes) -> list[tuple[str, str, int]]:
    """(soname, path, flags) of each entry, in the cache's order."""
    assert cache[:20] == b"glibc-ld.so.cache1.1"
    count = struct.unpack_from("<I", cache, 20)[0]

    def string(offset: int) -> str:
        return cache[offset : cache.index(b"\0", offset)].decode()

    entries = []
    for index in range(count):
        flags, key, value, _, _ = struct.unpack_from("<iIIIQ", cache, 48 + 24 * index)
        entries.append((string(key), string(value), flags))
    return entries


@pytest.mark.parametrize(
    "a, b, expected",
    [
        pytest.param("libz.so.1", "libz.so.1", 0, id="equal"),
        pytest.param("libfoo.so.10", "libfoo.so.9", 1, id="numeric-not-lexical"),
        pytest.param("libc.so.6", "libcrypt.so.1", -1, id="letters"),
        pytest.param("lib2.so", "libx.so", 1, id="digit-after-letter"),
        pytest.param("libfoo.so", "libfoo.so.1", -1, id="prefix"),
    ],
)
def test_dl_cache_libcmp(a: str, b: str, expected: int) -> None:
    result = _dl_cache_libcmp(a, b)
    assert (result > 0) - (result < 0) == expected


def test_cache_lists_each_library_once_in_linker_order() -> None:
    tree = Tree()
    for name in ("bin", "lib"):
        tree.add(symlink(name, f"usr/{name}"), owner="layout")
    tree.add(
        regular_file("etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n"), owner="libc-bin"
    )
    # Both spellings of the merged directory: scanned once, under the first one configured.
    conf = b"# Multiarch support\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n"
    tree.add(regular_file("etc/ld.so.conf.d/x86_64-linux-gnu.conf", conf), owner="libc6")
    libraries = "usr/lib/x86_64-linux-gnu"
    for name, soname in (
        ("libz.so.1.2.13", "libz.so.1"),
        ("libssl.so.3", "libssl.so.3"),
        ("libc.so.6", "libc.so.6"),
        ("libpcprofile.so", None),
    ):
        tree.add(regular_file(f"{libraries}/{name}", shared_object(soname)), owner="test")
    tree.add(symlink(f"{libraries}/libz.so.1", "libz.so.1.2.13"), owner="zlib1g")
    tree.add(
        regular_file(f"{libraries}/libarm.so.1", shared_object("libarm.so.1", _EM_AARCH64)),
        owner="test",
    )
    tree.add(regular_file(f"{libraries}/libnot-elf.so.1", b"INPUT(-lfoo)"), owner="test")
    tree.add(
        regular_file(f"{libraries}/python3.11/lib-dynload/x.so", shared_object("x.so")),
        owner="test",
    )
    assert read_cache(ld_so_cache(tree)) == [
        ("libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", 0x0303),
        ("libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3", 0x0303),
        ("libpcprofile.so", "/lib/x86_64-linux-gnu/libpcprofile.so", 0x0303),
        ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", 0x0303),
        ("libarm.so.1", "/lib/x86_64-linux-gnu/libarm.so.1", 0x0A03),
    ]


def test_no_configuration_gives_an_empty_cache() -> None:
    assert read_cache(ld_so_cache(Tree())) == []
