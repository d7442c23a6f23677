"""A base's Debian package lock that cannot build the base fails `./pants package` with a message
that names the lock, the package and the fix, and leaves nothing of the base in dist/: a lock
that misses a dependency, and a `.deb` the archive serves with another sha256 or not at all."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from integration.checkouts import Checkout, ImageTarget, PantsRun

LOCK_FILE = "packages.lock.json"
# Every program of the base links libc6; bash pre-depends on it.
DEPENDENCY = "libc6"
DEPENDENT = "bash"
# The package whose download the archive on 127.0.0.1 answers.
SERVED_PACKAGE = "netbase"
SERVED_BYTES = b"not the locked package\n"
# Where the archive on 127.0.0.1 has nothing (404).
DROPPED = "dropped"


@pytest.fixture
def archive() -> Iterator[str]:
    """A Debian archive on 127.0.0.1 that serves the same bytes for every path, except 404 under
    `DROPPED`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith(f"/{DROPPED}/"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(SERVED_BYTES)))
                self.end_headers()
                self.wfile.write(SERVED_BYTES)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _base(image_targets: list[ImageTarget]) -> ImageTarget:
    return next(target for target in image_targets if not target.is_service)


def _packages(document: dict) -> list[dict]:
    """The package entries of the lock's one architecture (the example base's amd64)."""
    return document["architectures"]["amd64"]["packages"]


def _edit_lock(checkout: Checkout, base: ImageTarget, edit: Callable[[dict], None]) -> str:
    """Applies `edit` to the base's lock document; returns the lock's path in the checkout."""
    relative = f"{base.spec_path}/{LOCK_FILE}"
    path = checkout.root / relative
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return relative


def _assert_failed_cleanly(run: PantsRun, checkout: Checkout, base: ImageTarget, lock: str) -> None:
    assert run.returncode == 1, run.report()
    assert "Traceback" not in run.stderr, run.report()
    assert lock in run.stderr, run.report()
    assert f"Fix: run `pants esb-lock {base.address}`" in run.stderr, run.report()
    assert checkout.files_under_output_prefix(base) == [], run.report()


def test_a_lock_missing_a_dependency_fails_naming_the_dependency_and_its_dependents(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    base = _base(image_targets)

    def drop_dependency(document: dict) -> None:
        _packages(document)[:] = [p for p in _packages(document) if p["name"] != DEPENDENCY]

    lock = _edit_lock(checkout, base, drop_dependency)

    run = checkout.pants("package", f"{base.spec_path}:")

    _assert_failed_cleanly(run, checkout, base, lock)
    assert f"{lock} (the package lock of {base.address}) cannot be built" in run.stderr
    assert f"  - {DEPENDENCY} (no locked package is or provides it), needed by:" in run.stderr
    assert f"      {DEPENDENT} " in run.stderr and f"(Pre-Depends: {DEPENDENCY} (>= " in run.stderr
    # The check runs before any download or assembly.
    assert not any("Assemble" in step for step in run.completed_steps), run.completed_steps


def _point_at(archive: str, sha256: str) -> Callable[[dict], None]:
    """An edit that moves the served package's URL to the local archive, with a sha256."""

    def edit(document: dict) -> None:
        (package,) = [p for p in _packages(document) if p["name"] == SERVED_PACKAGE]
        package["url"] = f"{archive}/{package['url'].split('/', 3)[3]}"
        package["sha256"] = sha256

    return edit


def _served_package(checkout: Checkout, base: ImageTarget) -> dict:
    document = json.loads((checkout.root / base.spec_path / LOCK_FILE).read_text())
    return next(p for p in _packages(document) if p["name"] == SERVED_PACKAGE)


@pytest.mark.parametrize(
    "path_prefix, cause, report",
    [
        pytest.param(
            "",
            "but the file it serves is not the one the lock pins (sha256 {sha256}, {size} bytes)",
            "The download reported: sha256 ",
            id="other-sha256",
        ),
        pytest.param(
            f"/{DROPPED}",
            "but it cannot be downloaded: the archive may have dropped this version",
            "The download reported: 404 ",
            id="dropped",
        ),
    ],
)
def test_a_deb_that_does_not_download_fails_naming_the_package_the_url_and_the_fix(
    repo_root: Path,
    image_targets: list[ImageTarget],
    scratch: Path,
    archive: str,
    path_prefix: str,
    cause: str,
    report: str,
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    base = _base(image_targets)
    # Nothing is downloaded whose sha256 the cache of `.deb` files holds: a sha256 of no file
    # makes the build ask.
    sha256 = "0" * 64
    lock = _edit_lock(checkout, base, _point_at(f"{archive}{path_prefix}", sha256))
    package = _served_package(checkout, base)

    run = checkout.pants("package", f"{base.spec_path}:")

    _assert_failed_cleanly(run, checkout, base, lock)
    assert (
        f"RootfsError: {lock} (the package lock of {base.address}) pins {SERVED_PACKAGE} "
        f"{package['version']} ({package['architecture']}) at {package['url']}, "
        + cause.format(sha256=sha256, size=package["size"])
    ) in run.stderr, run.report()
    assert report in run.stderr, run.report()
    assert "check that the mirror serves it" in run.stderr, run.report()
