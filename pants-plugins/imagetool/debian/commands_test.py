from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

import pytest

from esb_contract.base_lock import PackageLock, PackageLocks
from esb_contract.platform_facts import PlatformFacts
from imagetool.cli import main
from imagetool.debian import commands
from imagetool.debian.archive_test import PACKAGES, archive_files, signed_release
from imagetool.debian.conftest import MakeDeb
from imagetool.debian.rootfs_test import BASE_PASSWD, TOOL


def run(name: str, *argv: str) -> int:
    return main([name, *argv])


def test_debian_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = lzma.compress(PACKAGES)
    monkeypatch.setattr(
        commands, "fetch_https", archive_files(signed_release(index), index).__getitem__
    )
    out = tmp_path / "packages.lock.json"
    status = run(
        "debian-lock",
        "--source", "https://deb.example.org/debian bookworm main",
        "--package", "mawk",
        "--architecture", "amd64",
        "--no-verify-release",
        "--out-lock", str(out),
    )  # fmt: skip
    assert status == 0
    lock = PackageLocks.from_json(out.read_text())
    assert lock.architectures == ("amd64",)
    packages = lock.for_architecture("amd64").packages
    assert [(p.name, p.version) for p in packages] == [("mawk", "1.3.4.20200120-3.1")]


def test_debian_lock_reports_resolution_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    index = lzma.compress(PACKAGES)
    monkeypatch.setattr(
        commands, "fetch_https", archive_files(signed_release(index), index).__getitem__
    )
    status = run(
        "debian-lock",
        "--source", "https://deb.example.org/debian bookworm main",
        "--package", "awk",
        "--architecture", "amd64",
        "--no-verify-release",
        "--out-lock", str(tmp_path / "lock.json"),
    )  # fmt: skip
    assert status == 1
    assert "The requested package awk is in none of the indexes" in capsys.readouterr().err


def _write_lock(make_deb: MakeDeb, directory: Path, *, specs=(BASE_PASSWD, TOOL)) -> Path:
    lock = PackageLock(
        architecture="amd64",
        sources=(),
        requested=("tool",),
        platform=PlatformFacts("amd64", "2.36", "3.11.2"),
        packages=tuple(make_deb(spec)[0] for spec in specs),
    )
    path = directory / "packages.lock.json"
    path.write_text(PackageLocks((lock,)).to_json())
    return path


def test_debian_rootfs_is_reproducible(make_deb: MakeDeb, tmp_path: Path) -> None:
    lock = _write_lock(make_deb, tmp_path)
    descriptors = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        out.mkdir()
        status = run(
            "debian-rootfs",
            "--lock", str(lock),
            "--architecture", "amd64",
            "--debs", str(tmp_path / "cache"),
            "--mtime", "1700000000",
            "--out-blob", str(out / "rootfs.tar.gz"),
            "--out-descriptor", str(out / "rootfs.json"),
        )  # fmt: skip
        assert status == 0
        descriptors.append(json.loads((out / "rootfs.json").read_text()))
    assert descriptors[0] == descriptors[1]
    assert set(descriptors[0]) == {"digest", "diff_id", "size", "media_type"}


def _rootfs(lock: Path, directory: Path, architecture: str = "amd64") -> int:
    """Runs `debian-rootfs` on the lock, fetching its .deb files into a cache in the directory,
    and writing there."""
    return run(
        "debian-rootfs",
        "--lock", str(lock),
        "--architecture", architecture,
        "--debs", str(directory / "cache"),
        "--lock-path", "base/packages.lock.json",
        "--lock-target", "base:base",
        "--out-blob", str(directory / "rootfs.tar.gz"),
        "--out-descriptor", str(directory / "rootfs.json"),
    )  # fmt: skip


def test_debian_rootfs_reports_a_tampered_download(
    make_deb: MakeDeb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = _write_lock(make_deb, tmp_path)
    deb = tmp_path / "tool_2.0-1_amd64.deb"
    deb.write_bytes(deb.read_bytes()[:-1])
    assert _rootfs(lock, tmp_path) == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.startswith(
        "base/packages.lock.json (the package lock of base:base) pins tool 2.0-1 (amd64) at "
        f"{deb.as_uri()}, but the file it serves is not the one the lock pins"
    )
    assert "Fix: run `pants esb-lock base:base`" in stderr
    # Nothing of it is kept: the cache holds only what the lock pins.
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == [
        f"{hashlib.sha256((tmp_path / 'base-passwd_3.6.1_amd64.deb').read_bytes()).hexdigest()}.deb"
    ]


def test_debian_check_lock_passes_a_closed_lock(make_deb: MakeDeb, tmp_path: Path) -> None:
    assert run("debian-check-lock", "--lock", str(_write_lock(make_deb, tmp_path))) == 0


def test_debian_check_lock_names_the_missing_dependency(
    make_deb: MakeDeb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = _write_lock(make_deb, tmp_path, specs=(TOOL,))
    assert run("debian-check-lock", "--lock", str(lock)) == 1
    assert capsys.readouterr().err == (
        "The lock is not closed under its packages' dependencies "
        "(Depends and Pre-Depends):\n"
        "  - base-passwd (no locked package is or provides it), needed by:\n"
        "      tool 2.0-1 (Depends: base-passwd)\n"
    )


def test_debian_rootfs_refuses_an_unclosed_lock(
    make_deb: MakeDeb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = _write_lock(make_deb, tmp_path, specs=(TOOL,))
    assert _rootfs(lock, tmp_path) == 1
    assert "base-passwd (no locked package is or provides it)" in capsys.readouterr().err
    assert not (tmp_path / "rootfs.tar.gz").exists()


def test_debian_check_lock_asks_to_relock_a_lock_of_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "packages.lock.json"
    lock.write_text('{"format_version": 1, "packages": []}')
    assert run("debian-check-lock", "--lock", str(lock)) == 1
    assert "is of format_version 1, and this tool reads 3" in capsys.readouterr().err


def test_debian_rootfs_names_an_architecture_the_lock_lacks(
    make_deb: MakeDeb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = _write_lock(make_deb, tmp_path)
    assert _rootfs(lock, tmp_path, "arm64") == 1
    assert capsys.readouterr().err == (
        "The package lock has no packages for arm64, only for amd64.\n"
    )
    assert not (tmp_path / "rootfs.tar.gz").exists()
