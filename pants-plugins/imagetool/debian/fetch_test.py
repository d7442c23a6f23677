from __future__ import annotations

import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from esb_contract.base_lock import LockedPackage, PackageLock
from esb_contract.platform_facts import PlatformFacts
from imagetool.debian.fetch import DebFetchError, LockOrigin, cached_path, fetch_debs

ORIGIN = LockOrigin("base/packages.lock.json", "base:base")
DEB = b"!<arch>\nnot really a package, but bytes to fetch\n"


def _package(name: str, url: str, content: bytes = DEB) -> LockedPackage:
    sha256 = hashlib.sha256(content).hexdigest()
    return LockedPackage(name, "1.0-1", "amd64", url, sha256, len(content), "", "", "")


def _lock(*packages: LockedPackage) -> PackageLock:
    return PackageLock("amd64", (), ("tool",), PlatformFacts("amd64", "2.36", None), packages)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback, and its URL."""
    directory = tmp_path / "pool"
    directory.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield directory, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_what_the_cache_lacks_is_downloaded_and_kept_by_sha256(
    pool: tuple[Path, str], tmp_path: Path
) -> None:
    directory, url = pool
    (directory / "tool_1.0-1_amd64.deb").write_bytes(DEB)
    package = _package("tool", f"{url}/tool_1.0-1_amd64.deb")
    cache = tmp_path / "cache"
    paths = fetch_debs(_lock(package), cache, ORIGIN)
    assert paths == {"tool": cache / f"{package.sha256}.deb"}
    assert paths["tool"].read_bytes() == DEB
    # Kept: the next build downloads nothing, even with the file gone from the archive.
    (directory / "tool_1.0-1_amd64.deb").unlink()
    assert fetch_debs(_lock(package), cache, ORIGIN) == paths
    assert sorted(p.name for p in cache.iterdir()) == [f"{package.sha256}.deb"]


def test_a_damaged_cached_file_is_downloaded_anew(pool: tuple[Path, str], tmp_path: Path) -> None:
    directory, url = pool
    (directory / "tool_1.0-1_amd64.deb").write_bytes(DEB)
    package = _package("tool", f"{url}/tool_1.0-1_amd64.deb")
    cache = tmp_path / "cache"
    cache.mkdir()
    cached_path(cache, package).write_bytes(DEB.upper())
    assert fetch_debs(_lock(package), cache, ORIGIN)["tool"].read_bytes() == DEB


@pytest.mark.parametrize(
    "served, cause, reported",
    [
        pytest.param(
            b"something else",
            f"the file it serves is not the one the lock pins (sha256 "
            f"{hashlib.sha256(DEB).hexdigest()}, {len(DEB)} bytes): the lock was edited, or the "
            "archive or the mirror replaced the file",
            f"sha256 {hashlib.sha256(b'something else').hexdigest()}, 14 bytes",
            id="other-file",
        ),
        pytest.param(
            None,
            "it cannot be downloaded: the archive may have dropped this version from its pool",
            "404 File not found",
            id="missing",
        ),
    ],
)
def test_a_failed_download_names_the_package_the_lock_the_url_and_the_fix(
    pool: tuple[Path, str], tmp_path: Path, served: bytes | None, cause: str, reported: str
) -> None:
    directory, url = pool
    if served is not None:
        (directory / "tool_1.0-1_amd64.deb").write_bytes(served)
    package = _package("tool", f"{url}/tool_1.0-1_amd64.deb")
    cache = tmp_path / "cache"
    with pytest.raises(DebFetchError) as error:
        fetch_debs(_lock(package), cache, ORIGIN)
    message = str(error.value)
    assert message.startswith(
        f"base/packages.lock.json (the package lock of base:base) pins tool 1.0-1 (amd64) at "
        f"{package.url}, but {cause}"
    )
    assert f"\nThe download reported: {reported}" in message
    assert message.endswith(
        "Fix: run `pants esb-lock base:base` to resolve the packages anew against the archive "
        "and commit base/packages.lock.json; or, if the file should still be there, check that "
        "the mirror serves it."
    )
    # Nothing half-written or unchecked is kept.
    assert list(cache.iterdir()) == []
