from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from imagetool.debian.archive import (
    ArchiveError,
    Source,
    gpgv_release_reader,
    read_suite,
    unverified_release_reader,
)

SOURCE = Source.parse("https://deb.example.org/debian/ bookworm main")
PACKAGES = b"""\
Package: mawk
Version: 1.3.4.20200120-3.1
Architecture: amd64
Provides: awk
Filename: pool/main/m/mawk/mawk_1.3.4.20200120-3.1_amd64.deb
Size: 119144
SHA256: 0000000000000000000000000000000000000000000000000000000000000001
Description: a pattern scanning and text processing language
"""


def signed_release(index: bytes, *, path: str = "main/binary-amd64/Packages.xz") -> bytes:
    return (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        "Origin: Debian\nSuite: bookworm\nDate: Sat, 10 Jun 2023 08:55:33 UTC\nSHA256:\n"
        f" {hashlib.sha256(index).hexdigest()} {len(index)} {path}\n"
        "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
    ).encode()


def archive_files(inrelease: bytes, index: bytes) -> dict[str, bytes]:
    return {
        "https://deb.example.org/debian/dists/bookworm/InRelease": inrelease,
        "https://deb.example.org/debian/dists/bookworm/main/binary-amd64/Packages.xz": index,
    }


def test_source_parse() -> None:
    assert SOURCE == Source("https://deb.example.org/debian", "bookworm", ("main",))
    assert str(SOURCE) == "https://deb.example.org/debian bookworm main"
    with pytest.raises(ArchiveError, match="names no component"):
        Source.parse("https://deb.example.org/debian bookworm")


def test_reads_the_indexes_that_the_release_file_vouches_for() -> None:
    index = lzma.compress(PACKAGES)
    files = archive_files(signed_release(index), index)
    suite = read_suite(
        SOURCE, "amd64", fetch=files.__getitem__, read_release=unverified_release_reader
    )
    assert suite.release_date == "Sat, 10 Jun 2023 08:55:33 UTC"
    assert suite.index_sha256 == {
        "main/binary-amd64/Packages.xz": hashlib.sha256(index).hexdigest()
    }
    assert [(p["Package"], p["Provides"]) for p in suite.paragraphs] == [("mawk", "awk")]


def test_an_index_that_does_not_match_the_release_file_is_rejected() -> None:
    index = lzma.compress(PACKAGES)
    files = archive_files(signed_release(index), lzma.compress(PACKAGES + b"Tampered: yes\n"))
    with pytest.raises(ArchiveError, match="but the Release file says"):
        read_suite(SOURCE, "amd64", fetch=files.__getitem__, read_release=unverified_release_reader)


def test_a_component_that_the_release_file_lacks_is_named() -> None:
    index = lzma.compress(PACKAGES)
    files = archive_files(signed_release(index, path="contrib/binary-amd64/Packages.xz"), index)
    with pytest.raises(ArchiveError, match="lists no main/binary-amd64/Packages.xz"):
        read_suite(SOURCE, "amd64", fetch=files.__getitem__, read_release=unverified_release_reader)


def test_the_signature_check_decides_what_is_parsed() -> None:
    index = lzma.compress(PACKAGES)
    files = archive_files(b"unsigned garbage", index)
    verified_payload = (
        signed_release(index).split(b"\n\n", 1)[1].split(b"-----BEGIN PGP SIGNATURE")[0]
    )
    suite = read_suite(
        SOURCE, "amd64", fetch=files.__getitem__, read_release=lambda _: verified_payload
    )
    assert len(suite.paragraphs) == 1


def test_a_missing_keyring_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="The keyring .*absent.gpg does not exist"):
        gpgv_release_reader(tmp_path / "absent.gpg")
