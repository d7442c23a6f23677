"""Native libraries: does every ELF file of a venv find its `DT_NEEDED` libraries in the image?

The seed design's classic failure is a compiled wheel whose extension module links a shared
library (`libpq.so.5`, `libxml2.so.2`, …) that the builder had and the prod image lacks: the
image builds, and the service dies on `import`. This module turns that into a build error.

Two steps, each a cacheable process of its own:

1. `base_libraries` lists the file names the dynamic linker can find in the base image: the
   entries (files and symbolic links) directly in its default directories and in the directories
   `/etc/ld.so.conf` (with its `include`s) names, read from the base's layers bottom to top with
   OCI whiteouts. Only tar headers (and `ld.so.conf*` files) are read, so it is cheap; it depends
   on the base alone, so every service on the base shares it.
2. `missing_libraries` reads the venv layer: for each ELF file, each `DT_NEEDED` name must be
   found (a) through the file's own `DT_RPATH`/`DT_RUNPATH` inside the venv (auditwheel's
   `$ORIGIN/../<pkg>.libs`), (b) elsewhere in the venv by soname or file name (a library that
   a package loads first, as `torch` does for the `nvidia-*` wheels), or (c) among the base's
   libraries. The check is by name, as the dynamic linker searches.

A missing library is reported with the distribution that ships the ELF file (from the
`RECORD`s of the venv), the file, the library, and the Debian package that would provide it by
Debian's naming rule for shared library packages (policy §8.1: `libfoo.so.5` is in `libfoo5`,
`libfoo2.so.1` in `libfoo2-1`), marked as a guess; no `Contents` index is needed.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import posixpath
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping, Optional, Sequence, cast

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from esb_contract.architectures import ARCHITECTURES
from imagetool import tarlayer
from imagetool.errors import ToolError
from imagetool.tarlayer import OPAQUE_WHITEOUT, WHITEOUT, LayerMember

VENV_DIR = ".venv"
_LD_SO_CONF = "etc/ld.so.conf"
_MAX_SYMLINK_HOPS = 40
# The dynamic linker's built-in directories (glibc's trusted directories on Debian: the
# multiarch ones come from /etc/ld.so.conf.d, which is read too).
_DEFAULT_DIRECTORIES = ("lib", "usr/lib", "lib64", "usr/lib64")
# The libraries of glibc (Debian 12's libc6 on amd64 and arm64), which the naming rule would
# send to packages that do not exist (`libpthread.so.0` → `libpthread0`).
_GLIBC_PACKAGE = "libc6"
_GLIBC_LIBRARIES = frozenset(
    {
        "ld-linux-aarch64.so.1",
        "ld-linux-x86-64.so.2",
        "libBrokenLocale.so.1",
        "libanl.so.1",
        "libc.so.6",
        "libc_malloc_debug.so.0",
        "libdl.so.2",
        "libm.so.6",
        "libmvec.so.1",
        "libnsl.so.1",
        "libnss_compat.so.2",
        "libnss_dns.so.2",
        "libnss_files.so.2",
        "libnss_hesiod.so.2",
        "libpthread.so.0",
        "libresolv.so.2",
        "librt.so.1",
        "libthread_db.so.1",
        "libutil.so.1",
    }
)
_SONAME = re.compile(r"^(?P<name>lib[^/]*?)\.so(?:\.(?P<version>[0-9][0-9.]*))?$")


class NativeLibraryError(ToolError):
    """A compiled module of the venv needs a shared library that the image does not have."""


# ---------------------------------------------------------------------------------------------
# The base's libraries


@dataclass(frozen=True)
class _Entry:
    kind: str
    """`file`, `dir` or `symlink`."""
    linkname: str = ""
    data: Optional[bytes] = None


class _Filesystem:
    """Paths of an image's layers, applied bottom to top with whiteouts: headers only."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def apply_layer(self, members: Iterable[tuple[tarfile.TarInfo, Optional[bytes]]]) -> None:
        for info, data in members:
            path = posixpath.normpath(info.name).lstrip("/")
            if path in ("", "."):
                continue
            directory, name = posixpath.split(path)
            if name == OPAQUE_WHITEOUT:
                self._delete_under(directory)
            elif name.startswith(WHITEOUT):
                target = posixpath.join(directory, name[len(WHITEOUT) :])
                self.entries.pop(target, None)
                self._delete_under(target)
            elif info.isdir():
                self.entries[path] = _Entry("dir")
            elif info.issym():
                self.entries[path] = _Entry("symlink", info.linkname)
            elif info.islnk():
                self.entries[path] = self.entries.get(
                    posixpath.normpath(info.linkname).lstrip("/"), _Entry("file")
                )
            else:
                self.entries[path] = _Entry("file", data=data)

    def _delete_under(self, directory: str) -> None:
        prefix = directory.rstrip("/") + "/" if directory else ""
        for path in [p for p in self.entries if p.startswith(prefix)]:
            del self.entries[path]

    def real_path(self, path: str) -> str:
        """`path` with every symbolic link among its components resolved."""
        pending = [part for part in path.strip("/").split("/") if part]
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                resolved = resolved[:-1]
                continue
            entry = self.entries.get("/".join(resolved + [part]))
            if entry is None or entry.kind != "symlink":
                resolved.append(part)
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                return "/".join(resolved + [part] + pending)
            if entry.linkname.startswith("/"):
                resolved = []
            pending = [p for p in entry.linkname.split("/") if p] + pending
        return "/".join(resolved)

    def names_in(self, directory: str) -> set[str]:
        real = self.real_path(directory)
        prefix = real + "/"
        names = set()
        for path, entry in self.entries.items():
            if path.startswith(prefix) and "/" not in path[len(prefix) :] and entry.kind != "dir":
                names.add(path[len(prefix) :])
        return names

    def file_data(self, path: str) -> Optional[bytes]:
        entry = self.entries.get(self.real_path(path))
        return entry.data if entry is not None and entry.kind == "file" else None

    def configured_directories(self, conf: str = _LD_SO_CONF, depth: int = 0) -> list[str]:
        if depth > 8:
            return []
        directories: list[str] = []
        for line in (self.file_data(conf) or b"").decode(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                for pattern in line.split()[1:]:
                    pattern = pattern.lstrip("/")
                    parent = self.real_path(posixpath.dirname(pattern))
                    glob = posixpath.join(parent, posixpath.basename(pattern))
                    for included in sorted(self.entries):
                        if posixpath.dirname(included) == parent and fnmatch.fnmatchcase(
                            included, glob
                        ):
                            directories += self.configured_directories(included, depth + 1)
            elif line:
                directories.append(line.strip("/"))
        return directories


def _wanted_data(path: str) -> bool:
    return path == _LD_SO_CONF or path.startswith(f"{_LD_SO_CONF}.d/")


def read_layer_members(blob: Path) -> Iterator[tuple[tarfile.TarInfo, Optional[bytes]]]:
    """The members of a gzipped tar layer; file data only for `ld.so.conf` files."""
    with gzip.open(blob) as stream, tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as tar:
        for info in tar:
            data = None
            if info.isfile() and _wanted_data(posixpath.normpath(info.name).lstrip("/")):
                extracted = tar.extractfile(info)
                assert extracted is not None, f"{info.name} is a regular file"
                data = extracted.read()
            yield info, data


@dataclass(frozen=True)
class BaseLibraries:
    directories: tuple[str, ...]
    """The searched directories, in the image (absolute paths)."""
    libraries: tuple[str, ...]
    """Sorted file names found in them."""

    def to_json(self) -> dict:
        return {"directories": list(self.directories), "libraries": list(self.libraries)}

    @classmethod
    def from_json(cls, value: Mapping) -> BaseLibraries:
        return cls(tuple(value["directories"]), tuple(value["libraries"]))


def base_libraries(
    layers: Iterable[Iterable[tuple[tarfile.TarInfo, Optional[bytes]]]], architecture: str = ""
) -> BaseLibraries:
    """The libraries the dynamic linker finds in the image whose layers are `layers`."""
    fs = _Filesystem()
    for members in layers:
        fs.apply_layer(members)
    directories = [
        *fs.configured_directories(),
        # Debian's multiarch directories, for bases whose ld.so.conf.d was not shipped.
        *(
            f"{prefix}/{ARCHITECTURES[architecture].multiarch}"
            for prefix in ("lib", "usr/lib")
            if architecture in ARCHITECTURES
        ),
        *_DEFAULT_DIRECTORIES,
    ]
    unique = list(dict.fromkeys(directories))
    libraries: set[str] = set()
    for directory in unique:
        libraries |= {name for name in fs.names_in(directory) if ".so" in name}
    return BaseLibraries(tuple(f"/{d}" for d in unique), tuple(sorted(libraries)))


# ---------------------------------------------------------------------------------------------
# The venv's ELF files


@dataclass(frozen=True)
class ElfFile:
    path: str
    """Relative to the venv's root, e.g. `lib/python3.11/site-packages/pkg/_ext.so`."""
    needed: tuple[str, ...]
    soname: Optional[str]
    search_paths: tuple[str, ...]
    """DT_RPATH then DT_RUNPATH entries, unexpanded."""


def read_elf(path: str, data: bytes) -> Optional[ElfFile]:
    """The dynamic-linking facts of an ELF file; None if `data` is no (readable) ELF file."""
    if not data.startswith(b"\x7fELF"):
        return None
    try:
        elf = ELFFile(io.BytesIO(data))
        dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
        if dynamic is None:
            # Segments, for files without section headers.
            dynamic = next(
                (s for s in elf.iter_segments() if s.header.p_type == "PT_DYNAMIC"), None
            )
        if dynamic is None:
            return ElfFile(path, (), None, ())
        needed, sonames, search = [], [], []
        for tag in dynamic.iter_tags():
            if tag.entry.d_tag == "DT_NEEDED":
                needed.append(tag.needed)
            elif tag.entry.d_tag == "DT_SONAME":
                sonames.append(tag.soname)
            elif tag.entry.d_tag == "DT_RPATH":
                search += tag.rpath.split(":")
            elif tag.entry.d_tag == "DT_RUNPATH":
                search += tag.runpath.split(":")
    except (ELFError, ValueError, KeyError, AttributeError):
        return None
    return ElfFile(
        path, tuple(needed), sonames[0] if sonames else None, tuple(filter(None, search))
    )


@dataclass(frozen=True)
class VenvContents:
    elf_files: tuple[ElfFile, ...]
    paths: frozenset[str]
    """Every file and symlink path of the venv, relative to its root."""
    owners: Mapping[str, str]
    """Venv path → `name version` of the distribution whose RECORD lists it."""


def read_venv_layers(blobs: Sequence[Path]) -> VenvContents:
    """ELF files, paths and owning distributions of the layers that make `/.venv` (their
    members under `.venv/`)."""

    def members() -> Iterator[LayerMember]:
        for blob in blobs:
            with tarlayer.read_layer_members(blob) as layer:
                yield from layer

    return venv_contents(members())


def venv_contents(members: Iterable[tuple[tarfile.TarInfo, Optional[bytes]]]) -> VenvContents:
    elf_files, paths, records = [], set(), {}
    for info, data in members:
        path = posixpath.normpath(info.name).lstrip("/")
        if not path.startswith(f"{VENV_DIR}/"):
            continue
        path = path[len(VENV_DIR) + 1 :]
        if info.isdir():
            continue
        paths.add(path)
        if data is None:
            continue
        if path.endswith(".dist-info/RECORD"):
            records[path] = data
            continue
        elf = read_elf(path, data)
        if elf is not None:
            elf_files.append(elf)
    return VenvContents(tuple(elf_files), frozenset(paths), _owners(records))


def _owners(records: Mapping[str, bytes]) -> dict[str, str]:
    owners = {}
    for record_path, content in sorted(records.items()):
        dist_info = posixpath.dirname(record_path)
        site_packages = posixpath.dirname(dist_info)
        name, _, version = posixpath.basename(dist_info)[: -len(".dist-info")].partition("-")
        for row in csv.reader(io.StringIO(content.decode(errors="replace"))):
            if row:
                owners[posixpath.normpath(posixpath.join(site_packages, row[0]))] = (
                    f"{name} {version}".strip()
                )
    return owners


@dataclass(frozen=True)
class MissingLibrary:
    distribution: str
    """`name version` of the distribution that ships the ELF file, or `(unknown)`."""
    elf_path: str
    """The ELF file's path in the image, e.g. `/.venv/lib/python3.11/site-packages/x/_x.so`."""
    library: str
    debian_package: Optional[str]


def missing_libraries(venv: VenvContents, base: BaseLibraries) -> list[MissingLibrary]:
    venv_names = {posixpath.basename(path) for path in venv.paths}
    venv_names |= {elf.soname for elf in venv.elf_files if elf.soname}
    base_names = set(base.libraries)
    missing = []
    for elf in sorted(venv.elf_files, key=lambda e: e.path):
        for library in elf.needed:
            if _found(library, elf, venv, venv_names, base_names):
                continue
            missing.append(
                MissingLibrary(
                    venv.owners.get(elf.path, "(unknown)"),
                    f"/{VENV_DIR}/{elf.path}",
                    library,
                    debian_package_for(library),
                )
            )
    return missing


def _found(
    library: str, elf: ElfFile, venv: VenvContents, venv_names: set[str], base_names: set[str]
) -> bool:
    if "/" in library:
        # A path: relative to the process's working directory, or absolute. Only absolute
        # paths into the venv can be checked; anything else is the linker's business.
        return not library.startswith(f"/{VENV_DIR}/") or library[len(VENV_DIR) + 2 :] in venv.paths
    origin = posixpath.dirname(elf.path)
    for search_path in elf.search_paths:
        expanded = search_path.replace("${ORIGIN}", "$ORIGIN")
        if expanded.startswith("$ORIGIN"):
            directory = posixpath.normpath(posixpath.join(origin, "." + expanded[len("$ORIGIN") :]))
        elif expanded.startswith(f"/{VENV_DIR}/"):
            directory = expanded[len(VENV_DIR) + 2 :]
        else:
            continue
        if posixpath.join(directory, library) in venv.paths:
            return True
    return library in venv_names or library in base_names


def debian_package_for(library: str) -> Optional[str]:
    """The Debian package that ships `library` by Debian's naming rule (policy §8.1), a guess.

    `libpq.so.5` → `libpq5`; `libfoo2.so.1` → `libfoo2-1`; `libgtk-3.so.0` → `libgtk-3-0`.
    glibc's own libraries are the exception: all are in `libc6`.
    """
    if library in _GLIBC_LIBRARIES:
        return _GLIBC_PACKAGE
    match = _SONAME.match(library)
    if match is None or not match.group("version"):
        return None
    name, version = match.group("name").lower().replace("_", "-"), match.group("version")
    separator = "-" if name[-1].isdigit() else ""
    return f"{name}{separator}{version}"


def describe_missing(
    missing: Sequence[MissingLibrary], *, base: str, locked_packages: Sequence[str] = ()
) -> str:
    locked = set(locked_packages)
    lines = [
        f"The venv needs {len(missing)} shared librar{'y' if len(missing) == 1 else 'ies'} that "
        f"neither its wheels nor the base image {base} provide{'s' if len(missing) == 1 else ''}; "
        "the service would fail to import them at run time:",
        "",
    ]
    packages = []
    for item in missing:
        hint = ""
        if item.debian_package:
            if item.debian_package in locked:
                hint = (
                    f" (Debian's naming rule points at `{item.debian_package}`, which the base "
                    "already installs: the library is in a package of another name)"
                )
            else:
                hint = f" (likely provided by the Debian package `{item.debian_package}`)"
                packages.append(item.debian_package)
        lines.append(f"  - {item.distribution}: {item.elf_path} needs {item.library}{hint}")
    packages = sorted(set(packages))
    lines += ["", "Fix, one of:"]
    if packages:
        lines.append(
            f"  - add {', '.join(f'`{p}`' for p in packages)} to the `packages` of {base}, run "
            f"`pants esb-lock {base}` and commit its packages.lock.json;"
        )
    else:
        lines.append(
            f"  - add the Debian package that ships the library (`apt-file search <library>`) to "
            f"the `packages` of {base} and run `pants esb-lock {base}`;"
        )
    lines.append(
        "  - or lock a version of the distribution whose wheel bundles the library (manylinux "
        "wheels repaired by auditwheel carry their own copies in `<package>.libs/`)."
    )
    return "\n".join(lines)


def check_native_libraries(
    venv: VenvContents, base: BaseLibraries, *, base_name: str, locked_packages: Sequence[str] = ()
) -> None:
    missing = missing_libraries(venv, base)
    if missing:
        raise NativeLibraryError(
            describe_missing(missing, base=base_name, locked_packages=locked_packages)
        )
