"""Debian archive indexes: a suite's signed Release file and the binary Packages indexes it lists.

Fetching is separated from parsing: `read_suite` takes a `fetch` function and a Release reader,
so tests feed it bytes and the lock stays a pure function of the index content.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from debian import deb822

from imagetool.errors import ToolError

Fetch = Callable[[str], bytes]
# Takes an InRelease file, returns its payload once the signature is checked (or not).
ReadRelease = Callable[[bytes], bytes]

INDEX_FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Filename",
    "Size",
    "SHA256",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Conflicts",
    "Breaks",
)


class ArchiveError(ToolError):
    """An archive index is missing, unsigned, or does not match its Release file."""


@dataclass(frozen=True)
class Source:
    """An archive root, a suite and its components: one line of a sources.list."""

    url: str
    suite: str
    components: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> Source:
        """Parse `URL SUITE COMPONENT...`, e.g. `https://deb.debian.org/debian bookworm main`."""
        url, suite, *components = spec.split()
        if not components:
            raise ArchiveError(
                f"Source {spec!r} names no component. Expected 'URL SUITE COMPONENT...', "
                "e.g. 'https://deb.debian.org/debian bookworm main'."
            )
        return cls(url.rstrip("/"), suite, tuple(components))

    @property
    def release_url(self) -> str:
        return f"{self.url}/dists/{self.suite}/InRelease"

    def index_path(self, component: str, architecture: str) -> str:
        """The index's path relative to the suite's directory, as the Release file lists it."""
        return f"{component}/binary-{architecture}/Packages.xz"

    def __str__(self) -> str:
        return " ".join((self.url, self.suite, *self.components))


@dataclass(frozen=True)
class SuiteIndex:
    """The binary package paragraphs of one source, with what identifies the index content."""

    source: Source
    release_date: str
    index_sha256: Mapping[str, str]
    paragraphs: tuple[deb822.Packages, ...]


def read_suite(
    source: Source, architecture: str, *, fetch: Fetch, read_release: ReadRelease
) -> SuiteIndex:
    """Fetch the suite's InRelease and its Packages indexes, each checked against the Release."""
    release = deb822.Release(read_release(fetch(source.release_url)))
    checksums = {entry["name"]: entry for entry in release.get("SHA256", [])}
    index_sha256 = {}
    paragraphs: list[deb822.Packages] = []
    for component in source.components:
        path = source.index_path(component, architecture)
        if path not in checksums:
            raise ArchiveError(
                f"{source.release_url} lists no {path}: does the suite have component "
                f"{component!r} and architecture {architecture!r}?"
            )
        expected = checksums[path]
        compressed = fetch(f"{source.url}/dists/{source.suite}/{path}")
        actual = hashlib.sha256(compressed).hexdigest()
        if actual != expected["sha256"] or len(compressed) != int(expected["size"]):
            raise ArchiveError(
                f"{source.url}/dists/{source.suite}/{path} has sha256 {actual} and size "
                f"{len(compressed)}, but the Release file says {expected['sha256']} and "
                f"{expected['size']}: the mirror is mid-update or the download was altered. Retry."
            )
        index_sha256[path] = actual
        paragraphs.extend(
            deb822.Packages.iter_paragraphs(
                lzma.decompress(compressed).decode(), fields=list(INDEX_FIELDS), use_apt_pkg=False
            )
        )
    return SuiteIndex(source, release["Date"], index_sha256, tuple(paragraphs))


def fetch_https(url: str) -> bytes:
    # urllib's default TLS context honours SSL_CERT_FILE/SSL_CERT_DIR (intercepting proxies' CAs)
    # and the *_proxy environment variables.
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.read()
    except OSError as e:  # urllib's URLError and HTTPError are OSErrors
        raise ArchiveError(f"Cannot fetch {url}: {e}. Check the source URL and the network.") from e


def gpgv_release_reader(keyring: Path) -> ReadRelease:
    """A Release reader that returns only what `gpgv` verified against the keyring."""
    if not keyring.is_file():
        raise ArchiveError(
            f"The keyring {keyring} does not exist. Pass the archive's keyring with --keyring "
            "(Debian's is in the debian-archive-keyring package)."
        )
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ArchiveError(
            "Checking Release signatures needs `gpgv` on PATH (Debian: apt-get install gpgv). "
            "Install it, or skip the check with --no-verify-release (not recommended)."
        )

    def read(inrelease: bytes) -> bytes:
        with tempfile.TemporaryDirectory() as scratch:
            signed = Path(scratch, "InRelease")
            signed.write_bytes(inrelease)
            # --output makes gpgv emit the signed text itself, so that nothing outside the
            # signature (text before or after the armour) can reach the parser.
            result = subprocess.run(
                [gpgv, "--keyring", str(keyring), "--output", "-", str(signed)],
                capture_output=True,
            )
        if result.returncode != 0:
            raise ArchiveError(
                f"The Release file's signature does not verify against {keyring}:\n"
                f"{result.stderr.decode(errors='replace')}"
            )
        return result.stdout

    return read


def unverified_release_reader(inrelease: bytes) -> bytes:
    # The deb822 parser skips the armour of a clearsigned file by itself.
    return inrelease
