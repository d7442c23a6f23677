"""Files pinned by URL, sha256 and size, kept in a content-addressed cache directory.

A step that needs a pinned file (a locked `.deb`, uv's wheel) fetches it itself rather than
receiving it as an input: its cache key is then the pin, so a build whose outputs are cached
downloads nothing, and only a step that runs fetches what the cache lacks. A file enters the
cache only once it matches its pin, under its sha256, by an atomic rename.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from esb_contract.pinned_url import PinnedUrl

_ATTEMPTS = 3
_CHUNK = 1 << 20
_TIMEOUT_S = 120


class PinnedFetchError(Exception):
    """A pinned file that cannot be had as pinned. The caller words the message: `cause` says
    what went wrong in a clause ("the server refused it"), `reported` what the download said."""

    def __init__(self, cause: str, reported: str):
        super().__init__(f"{cause}: {reported}")
        self.cause = cause
        self.reported = reported


class Refused(PinnedFetchError):
    """The server answered with an error: another attempt would get the same answer."""


class Mismatch(PinnedFetchError):
    """The server sent a file other than the pinned one."""


class Unreachable(PinnedFetchError):
    """Every attempt failed on the network."""


def cached_path(cache: Path, pin: PinnedUrl, suffix: str) -> Path:
    return cache / f"{pin.sha256}{suffix}"


def _is_cached(path: Path, pin: PinnedUrl) -> bool:
    """Whether `path` holds the pinned file. Files enter the cache only once checked; they are
    checked again here, since anything may have changed them since (a damaged one is fetched
    anew)."""
    if not (path.is_file() and path.stat().st_size == pin.size):
        return False
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest() == pin.sha256


def _fetch_once(pin: PinnedUrl, directory: Path) -> tuple[str, str, int]:
    """The file at the pin's URL in a partial file of `directory`: its path, sha256 and size."""
    import urllib.request  # imported when used, as in `_download`

    with urllib.request.urlopen(pin.url, timeout=_TIMEOUT_S) as response:
        descriptor, partial = tempfile.mkstemp(dir=directory, prefix=".partial-")
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


def _download(pin: PinnedUrl, path: Path) -> None:
    """Downloads the pinned file to `path` (in the cache directory), retrying network failures;
    raises a `PinnedFetchError` when it cannot."""
    # Imported when used: every build step is a process of its own (see `imagetool.cli`), and
    # most find their pinned files in the cache.
    import urllib.error

    last_error = ""
    for _ in range(_ATTEMPTS):
        try:
            partial, sha256, size = _fetch_once(pin, path.parent)
        except urllib.error.HTTPError as e:
            raise Refused("the server refused it", f"{e.code} {e.reason} for {pin.url}") from None
        except OSError as e:
            last_error = f"{e} for {pin.url}"
            continue
        if (sha256, size) != (pin.sha256, pin.size):
            os.unlink(partial)
            raise Mismatch(
                f"the file it serves is not the pinned one (sha256 {pin.sha256}, {pin.size} bytes)",
                f"sha256 {sha256}, {size} bytes",
            )
        os.replace(partial, path)
        return
    raise Unreachable(f"it cannot be downloaded ({_ATTEMPTS} attempts)", last_error)


def fetch(pin: PinnedUrl, cache: Path, suffix: str) -> Path:
    """The pinned file: from `cache`, or downloaded into it."""
    path = cached_path(cache, pin, suffix)
    if not _is_cached(path, pin):
        cache.mkdir(parents=True, exist_ok=True)
        _download(pin, path)
    return path
