"""The locked `.deb` files, from a content-addressed cache or downloaded into it.

`debian-rootfs` fetches the packages itself rather than receiving them as inputs: its cache key
is then the lock, which pins every file by URL, sha256 and size, so a build whose root
filesystem is in the cache downloads nothing; only a build that assembles it fetches what the
cache lacks. Every file is checked against the lock before it is kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from esb_contract.base_lock import LockedPackage, PackageLock
from imagetool.errors import ToolError

# Downloads at a time: the archive's files are many and small.
_PARALLEL = 8
_ATTEMPTS = 3
_CHUNK = 1 << 20
TIMEOUT_S = 120


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


def cached_path(cache: Path, package: LockedPackage) -> Path:
    return cache / f"{package.sha256}.deb"


def _fetch_once(package: LockedPackage, cache: Path) -> tuple[str, str, int]:
    """The file at the package's URL in a partial file of `cache`: its path, sha256 and size."""
    with urllib.request.urlopen(package.url, timeout=TIMEOUT_S) as response:
        descriptor, partial = tempfile.mkstemp(dir=cache, prefix=".partial-")
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(descriptor, "wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(partial)
            raise
    return partial, digest.hexdigest(), size


def _download(package: LockedPackage, cache: Path, origin: LockOrigin) -> None:
    last_error = ""
    for _ in range(_ATTEMPTS):
        try:
            partial, sha256, size = _fetch_once(package, cache)
        except urllib.error.HTTPError as e:
            # The server answered: another attempt would get the same answer.
            raise DebFetchError(
                origin.failure(
                    package,
                    "it cannot be downloaded: the archive may have dropped this version from its "
                    "pool (Debian keeps only the current version of a package), or the mirror "
                    "is unreachable",
                    f"{e.code} {e.reason} for {package.url}",
                )
            ) from None
        except OSError as e:
            last_error = f"{e} for {package.url}"
            continue
        if (sha256, size) != (package.sha256, package.size):
            os.unlink(partial)
            raise DebFetchError(
                origin.failure(
                    package,
                    f"the file it serves is not the one the lock pins (sha256 {package.sha256}, "
                    f"{package.size} bytes): the lock was edited, or the archive or the mirror "
                    "replaced the file",
                    f"sha256 {sha256}, {size} bytes",
                )
            )
        os.replace(partial, cached_path(cache, package))
        return
    raise DebFetchError(
        origin.failure(
            package,
            f"it cannot be downloaded ({_ATTEMPTS} attempts): the mirror is unreachable",
            last_error,
        )
    )


def _is_cached(path: Path, package: LockedPackage) -> bool:
    """Files enter the cache only once checked; checked again here, since anything may have
    changed them since (a damaged one is downloaded anew)."""
    if not (path.is_file() and path.stat().st_size == package.size):
        return False
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest() == package.sha256


def fetch_debs(lock: PackageLock, cache: Path, origin: LockOrigin) -> dict[str, Path]:
    """Each locked package's `.deb`, by package name: from `cache`, or downloaded into it."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [p for p in lock.packages if not _is_cached(cached_path(cache, p), p)]
    with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
        # `list` re-raises the first failure, in the lock's order.
        list(pool.map(lambda package: _download(package, cache, origin), missing))
    return {package.name: cached_path(cache, package) for package in lock.packages}
