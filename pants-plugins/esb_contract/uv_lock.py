"""What both halves read from a parsed `uv.lock`: the packages it takes from local paths and
which of them a project installs. The backend reads them to know which files an image needs
before any process runs; the image tool reads them to refuse paths outside the project and to
build local packages into wheels.

Every reader is lenient: a lock that does not parse as expected names nothing, and the tool's
lock check reports it with its fix.
"""

import posixpath
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

# The keys of a package's `source` table that name a local path, as uv writes them: a project
# directory built editable or not, a workspace member that is not a package, and a wheel or
# sdist file.
BUILT_KINDS = ("editable", "directory")
LOCAL_KINDS = (*BUILT_KINDS, "virtual", "path")


def normalise_name(name: str) -> str:
    """A project's name as uv writes it in the lock (PEP 503), or an extra's as PEP 685
    compares them: the same rule."""
    return re.sub(r"[-_.]+", "-", name).lower()


def leaves_project(path: str) -> bool:
    """Whether a local source's path, relative to the project, names something outside it."""
    if posixpath.isabs(path) or path.startswith("~"):
        return True
    normalised = posixpath.normpath(path)
    return normalised == ".." or normalised.startswith("../")


@dataclass(frozen=True)
class LocalSource:
    """One package the lock takes from a local path."""

    package: str
    """The package's name as the lock spells it."""
    kind: str
    """One of `LOCAL_KINDS`."""
    path: str
    """As the lock writes it, relative to the project (or the workspace's root)."""

    @property
    def directory(self) -> str:
        return posixpath.normpath(self.path)

    @property
    def is_built(self) -> bool:
        """Whether the image builds it into a wheel: a project directory other than `.`."""
        return self.kind in BUILT_KINDS and self.directory != "."


def _packages(lock: Mapping[str, Any]) -> List[Dict[str, Any]]:
    packages = lock.get("package", [])
    return [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []


def _local_source(package: Mapping[str, Any]) -> Optional[LocalSource]:
    source = package.get("source")
    if not isinstance(source, dict):
        return None
    for kind in LOCAL_KINDS:
        path = source.get(kind)
        if isinstance(path, str):
            return LocalSource(str(package.get("name", "?")), kind, path)
    return None


def local_sources(lock: Mapping[str, Any]) -> Tuple[LocalSource, ...]:
    """Every package of the lock that comes from a local path, in the lock's order."""
    found = (_local_source(package) for package in _packages(lock))
    return tuple(source for source in found if source is not None)


def may_build_local_packages(lock: bytes) -> bool:
    """False only when the lock's bytes cannot give `lock_local_directories` anything, which
    spares the backend a parse of the whole lock, megabytes in a large repository, on every
    fresh start: no backslash (an escape could spell a key), and every occurrence of a built
    kind's key is the project's own `kind = "."`, as uv writes it. Anything else says True,
    and the lock is parsed."""
    if b"\\" in lock:
        return True
    return any(
        lock.count(kind.encode()) != lock.count(f'{kind} = "."'.encode()) for kind in BUILT_KINDS
    )


def lock_local_directories(lock: Mapping[str, Any]) -> Tuple[str, ...]:
    """The directories of the local packages the lock builds (path and editable sources, and
    workspace members that are packages), normalised; the project itself (`.`) is not one."""
    return tuple(sorted({s.directory for s in local_sources(lock) if s.is_built}))


def installed_local_directories(lock: Mapping[str, Any], package: str) -> Tuple[str, ...]:
    """The root-relative paths of the local packages (workspace members and path sources) that
    `package` installs, transitively, through its runtime dependencies, as the lock records
    them: what `uv export --package <package>` emits as `./<dir>`."""
    by_name: Dict[str, List[Dict[str, Any]]] = {}
    for entry in _packages(lock):
        if isinstance(entry.get("name"), str):
            by_name.setdefault(normalise_name(entry["name"]), []).append(entry)
    # (name, extra): a dependency on `x[extra]` also installs x's optional dependencies.
    start = (normalise_name(package), "")
    seen, pending = {start}, [start]
    directories = set()
    while pending:
        name, extra = pending.pop()
        for entry in by_name.get(name, []):
            if extra:
                optional = entry.get("optional-dependencies", {})
                dependencies = optional.get(extra, []) if isinstance(optional, dict) else []
            else:
                dependencies = entry.get("dependencies", [])
                source = _local_source(entry)
                if source is not None and name != start[0]:
                    directories.add(source.directory)
            for dependency in dependencies if isinstance(dependencies, list) else []:
                if not isinstance(dependency, dict) or not isinstance(dependency.get("name"), str):
                    continue
                extras = dependency.get("extra", [])
                for key in ("", *(e for e in extras if isinstance(e, str))):
                    step = (normalise_name(dependency["name"]), key)
                    if step not in seen:
                        seen.add(step)
                        pending.append(step)
    return tuple(sorted(directories))
