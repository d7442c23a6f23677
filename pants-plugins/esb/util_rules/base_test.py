from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.engine.target import InvalidFieldException
from pants.testutil.rule_runner import RuleRunner

from esb.util_rules import base
from esb.util_rules.base import (
    BaseLockCheckRequest,
    BaseLockError,
    DebDownloadRequest,
    DownloadedDeb,
    base_lock_check_failure,
    check_base_files,
    check_lock_matches_target,
    parse_base_lock,
)
from esb.util_rules.platform import BasePlatform, BasePlatformError
from esb_contract.base_lock import FORMAT_VERSION, LockedPackage
from esb_contract.messages import USER_ERROR

_LOCK: dict[str, Any] = {
    "format_version": FORMAT_VERSION,
    "architecture": "amd64",
    "sources": [
        {
            "url": "https://deb.debian.org/debian",
            "suite": "bookworm",
            "components": ["main"],
            "release_date": "Sat, 10 Jun 2023 08:55:00 UTC",
            "index_sha256": {"main/binary-amd64/Packages.xz": "cd" * 32},
        }
    ],
    "packages": [
        {
            "name": "python3",
            "version": "3.11.2-1+b1",
            "architecture": "amd64",
            "url": "https://deb.debian.org/debian/pool/main/p/python3-defaults/python3_3.11.2-1+b1_amd64.deb",
            "sha256": "ab" * 32,
            "size": 26000,
            "depends": "",
            "pre_depends": "",
            "provides": "",
        }
    ],
    "platform": {"architecture": "amd64", "glibc_version": "2.36", "python_version": "3.11.2"},
    "requested": ["python3"],
}


def _parse(lock: dict):
    return parse_base_lock(
        json.dumps(lock).encode(), lock_path="base/packages.lock.json", target="base:b"
    )


def test_parse_lock() -> None:
    lock = _parse(_LOCK)
    assert lock.requested == ("python3",)
    assert lock.packages[0].filename == "python3_3.11.2-1+b1_amd64.deb"
    assert lock.platform == BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
    assert lock.platform.uv_python_platform == "x86_64-manylinux_2_36"
    assert lock.platform.interpreter == "/usr/bin/python3.11"
    assert lock.platform.tool_platform == "linux_x86_64"


@pytest.mark.parametrize(
    "lock, expected",
    [
        pytest.param({**_LOCK, "packages": [{"name": "x"}]}, "lacks or misspells", id="package"),
        pytest.param(
            {k: v for k, v in _LOCK.items() if k != "platform"},
            "lacks or misspells a field: 'platform'",
            id="platform",
        ),
        pytest.param({**_LOCK, "format_version": 1}, "of format_version 1", id="format"),
        pytest.param(
            {**_LOCK, "platform": {**_LOCK["platform"], "python_version": None}},
            "records no python_version, interpreter",
            id="no-python",
        ),
    ],
)
def test_malformed_lock_names_file_and_fix(lock: dict, expected: str) -> None:
    with pytest.raises(BaseLockError) as exc:
        _parse(lock)
    assert "base/packages.lock.json" in str(exc.value)
    assert expected in str(exc.value)
    assert "pants esb-lock base:b" in str(exc.value)


def test_unsupported_architecture() -> None:
    with pytest.raises(BaseLockError, match="'s390x'; supported: amd64, arm64"):
        _parse({**_LOCK, "platform": {**_LOCK["platform"], "architecture": "s390x"}})


def test_stale_lock_says_what_changed_and_how_to_fix() -> None:
    lock = _parse(_LOCK)
    check_lock_matches_target(
        lock, ("python3",), lock_path="base/packages.lock.json", target="base:b"
    )
    with pytest.raises(BaseLockError) as exc:
        check_lock_matches_target(
            lock, ("curl",), lock_path="base/packages.lock.json", target="base:b"
        )
    message = str(exc.value)
    assert "base/packages.lock.json is stale" in message
    assert "adds curl and removes python3" in message
    assert "run `pants esb-lock base:b`" in message


_SCRIPTS = ("base/ensure_ca_trust.sh", "base/entrypoint.sh")
_ADDRESS = Address("base", target_name="b")


def test_base_files_of_either_kind() -> None:
    check_base_files(_ADDRESS, (*_SCRIPTS, "base/packages.lock.json"), upstream=False)
    check_base_files(_ADDRESS, _SCRIPTS, upstream=True)


def test_a_base_from_packages_needs_its_lock() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_base_files(_ADDRESS, _SCRIPTS, upstream=False)
    message = str(exc.value)
    assert message.startswith(
        "The `sources` field of the target base:b selects no packages.lock.json in base/."
    )
    assert "`pants esb-lock base:b`" in message


def test_an_upstream_base_has_no_lock() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_base_files(_ADDRESS, (*_SCRIPTS, "base/packages.lock.json"), upstream=True)
    message = str(exc.value)
    assert (
        "selects base/packages.lock.json, but the base is built on its `upstream` image" in message
    )
    assert "Fix: delete base/packages.lock.json" in message
    assert 'sources=["ensure_ca_trust.sh", "entrypoint.sh"]' in message


def test_an_upstream_base_needs_its_scripts() -> None:
    with pytest.raises(InvalidFieldException, match="selects no entrypoint.sh in base/"):
        check_base_files(_ADDRESS, _SCRIPTS[:1], upstream=True)


def test_a_failed_lock_check_names_the_lock_the_target_and_the_fix() -> None:
    request = BaseLockCheckRequest(base.FileContent("base/packages.lock.json", b"{}"), "base:b")
    stderr = (
        "The lock is not closed under its packages' dependencies "
        "(Depends and Pre-Depends):\n  - libc6 (no locked package is or provides it), needed by:\n"
        "      bash 5.2.15-2+b13 (Pre-Depends: libc6 (>= 2.36))\n"
    )
    message = base_lock_check_failure(request, USER_ERROR, stderr)
    assert message.startswith(
        "base/packages.lock.json (the package lock of base:b) cannot be built:\n"
        "The lock is not closed"
    )
    assert "bash 5.2.15-2+b13 (Pre-Depends: libc6 (>= 2.36))" in message
    assert "imagetool" not in message
    assert message.endswith(
        "Fix: run `pants esb-lock base:b` and commit base/packages.lock.json; it writes a lock "
        "that holds every package the requested ones need."
    )


_DEB = b"!<arch>\nnot really a package, but bytes to download\n"


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(rules=[base.download_deb, QueryRule(DownloadedDeb, [DebDownloadRequest])])


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A directory of one file, downloaded through `file://` URLs."""
    (tmp_path / "tool_1.0-1_amd64.deb").write_bytes(_DEB)
    return tmp_path


def _download(rule_runner: RuleRunner, url: str, sha256: str) -> DownloadedDeb:
    package = LockedPackage("tool", "1.0-1", "amd64", url, sha256, len(_DEB), "", "", "")
    return rule_runner.request(
        DownloadedDeb, [DebDownloadRequest(package, "base/packages.lock.json", "base:b")]
    )


def test_a_pinned_deb_downloads(rule_runner: RuleRunner, pool: Path) -> None:
    url = f"file://{pool}/tool_1.0-1_amd64.deb"
    downloaded = _download(rule_runner, url, hashlib.sha256(_DEB).hexdigest())
    assert rule_runner.request(base.DigestContents, [downloaded.digest])[0].content == _DEB


@pytest.mark.parametrize(
    "filename, sha256, cause, report",
    [
        pytest.param(
            "tool_1.0-1_amd64.deb",
            "ab" * 32,
            f"the file it serves is not the one the lock pins (sha256 {'ab' * 32}, {len(_DEB)} "
            "bytes): the lock was edited, or the archive or the mirror replaced the file.",
            "Wrong digest for downloaded file",
            id="other-sha256",
        ),
        pytest.param(
            "tool_0.9-1_amd64.deb",
            hashlib.sha256(_DEB).hexdigest()[::-1],
            "it cannot be downloaded: the archive may have dropped this version from its pool",
            "Error (No such file or directory",
            id="missing",
        ),
    ],
)
def test_a_failed_download_names_the_package_the_lock_the_url_and_the_fix(
    rule_runner: RuleRunner, pool: Path, filename: str, sha256: str, cause: str, report: str
) -> None:
    url = f"file://{pool}/{filename}"
    with pytest.raises(ExecutionError) as error:
        _download(rule_runner, url, sha256)
    message = str(error.value)
    assert (
        "DebDownloadError: base/packages.lock.json (the package lock of base:b) pins tool "
        f"1.0-1 (amd64) at {url}, but {cause}"
    ) in message
    assert f"The download reported: {report}" in message.split("DebDownloadError: ", 1)[1]
    assert (
        "Fix: run `pants esb-lock base:b` to resolve the packages anew against the archive and "
        "commit base/packages.lock.json; or, if the file should still be there, check that the "
        "mirror serves it."
    ) in message


def test_an_upstream_base_without_an_interpreter_is_refused_naming_what_is_missing() -> None:
    facts = {"architecture": "amd64", "glibc_version": "2.36", "python_version": "3.12.7"}
    with pytest.raises(BasePlatformError, match="records no interpreter"):
        BasePlatform.from_facts(facts, where="python:3.12")
