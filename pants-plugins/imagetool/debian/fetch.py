"""The locked `.deb` files, from a content-addressed cache or downloaded into it
(`imagetool.pinned`).

`debian-rootfs` fetches the packages itself rather than receiving them as inputs: its cache key
is then the lock, which pins every file by URL, sha256 and size, so a build whose root
filesystem is in the cache downloads nothing; only a build that assembles it fetches what the
cache lacks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from esb_contract.base_lock import LockedPackage, PackageLock
from esb_contract.pinned_url import PinnedUrl
from imagetool import pinned
from imagetool.errors import ToolError

# Downloads at a time: the archive's files are many and small.
_PARALLEL = 8
_SUFFIX = ".deb"


class DebFetchError(ToolError):
    """A locked `.deb` that cannot be had as the lock pins it; the message names the fix."""


@dataclass(frozen=True)
class LockOrigin:
    """Where the lock comes from, for messages: its path, and the command that locks anew."""

    path: str
    target: str

    def failure(self, package: LockedPackage, cause: str, reported: str) -> str:
        return (
            f"{self.path} (the package lock of {self.target}) pins {package.name} "
            f"{package.version} ({package.architecture}) at {package.url}, but {cause}.\n"
            f"The download reported: {reported.strip()}\n\n"
            f"Fix: run `pants esb-lock {self.target}` to resolve the packages anew against the "
            f"archive and commit {self.path}; or, if the file should still be there, check that "
            "the mirror serves it."
        )


def _pin(package: LockedPackage) -> PinnedUrl:
    return PinnedUrl(package.url, package.sha256, package.size)


def cached_path(cache: Path, package: LockedPackage) -> Path:
    return pinned.cached_path(cache, _pin(package), _SUFFIX)


def _cause(package: LockedPackage, error: pinned.PinnedFetchError) -> str:
    if isinstance(error, pinned.Refused):
        return (
            "it cannot be downloaded: the archive may have dropped this version from its pool "
            "(Debian keeps only the current version of a package), or the mirror is unreachable"
        )
    if isinstance(error, pinned.Mismatch):
        return (
            f"the file it serves is not the one the lock pins (sha256 {package.sha256}, "
            f"{package.size} bytes): the lock was edited, or the archive or the mirror replaced "
            "the file"
        )
    return f"{error.cause}: the mirror is unreachable"


def _fetch(package: LockedPackage, cache: Path, origin: LockOrigin) -> Path:
    try:
        return pinned.fetch(_pin(package), cache, _SUFFIX)
    except pinned.PinnedFetchError as e:
        raise DebFetchError(origin.failure(package, _cause(package, e), e.reported)) from None


def fetch_debs(lock: PackageLock, cache: Path, origin: LockOrigin) -> dict[str, Path]:
    """Each locked package's `.deb`, by package name: from `cache`, or downloaded into it."""
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        # `list` re-raises the first failure, in the lock's order.
        paths = list(pool.map(lambda package: _fetch(package, cache, origin), lock.packages))
    return {package.name: path for package, path in zip(lock.packages, paths)}
