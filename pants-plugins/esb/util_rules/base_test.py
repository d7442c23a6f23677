from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from esb.util_rules import base
from esb.util_rules.base import (
    BaseLockCheckRequest,
    BaseLockError,
    base_lock_check_failure,
    check_base_files,
    check_lock_matches_target,
    parse_base_lock,
)
from esb.util_rules.lock_testutil import debian_lock
from esb.util_rules.platform import BasePlatform, BasePlatformError
from esb_contract.base_lock import FORMAT_VERSION, PackageLocks
from esb_contract.messages import USER_ERROR

AMD64 = debian_lock("amd64", [("python3", "3.11.2-1+b1")])
ARM64 = debian_lock("arm64", [("python3", "3.11.2-1+b1")])
_LOCK: dict[str, Any] = json.loads(PackageLocks((AMD64,)).to_json())


def _parse(lock: dict, architecture: str = "amd64"):
    return parse_base_lock(
        json.dumps(lock).encode(),
        lock_path="base/packages.lock.json",
        target="base:b",
        architecture=architecture,
    )


def _with_amd64(**changes: Any) -> dict[str, Any]:
    """The lock with fields of its amd64 section changed."""
    return {**_LOCK, "architectures": {"amd64": {**_LOCK["architectures"]["amd64"], **changes}}}


def test_parse_lock() -> None:
    lock = _parse(_LOCK)
    assert lock.requested == ("python3",)
    assert lock.packages[0].filename == "python3_3.11.2-1+b1_amd64.deb"
    assert lock.platform == BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
    assert lock.platform.uv_python_platform == "x86_64-manylinux_2_36"
    assert lock.platform.interpreter == "/usr/bin/python3.11"
    assert lock.platform.tool_platform == "linux_x86_64"


def test_each_architecture_is_read_from_its_own_section() -> None:
    both = json.loads(PackageLocks((AMD64, ARM64)).to_json())
    lock = _parse(both, "arm64")
    assert lock.architectures == ("amd64", "arm64")
    assert lock.packages[0].architecture == "arm64"
    assert lock.platform.uv_python_platform == "aarch64-manylinux_2_36"
    assert lock.platform.tool_platform == "linux_arm64"


def test_a_lock_without_the_asked_architecture_is_stale() -> None:
    with pytest.raises(BaseLockError) as exc:
        _parse(_LOCK, "arm64")
    assert str(exc.value) == (
        "base/packages.lock.json (the package lock of base:b) is stale: it locks packages for "
        "amd64 and not for arm64, which the `platforms` field asks for.\n\n"
        "Fix: run `pants esb-lock base:b` and commit base/packages.lock.json."
    )


@pytest.mark.parametrize(
    "lock, expected",
    [
        pytest.param(_with_amd64(packages=[{"name": "x"}]), "lacks or misspells", id="package"),
        pytest.param(
            {"format_version": FORMAT_VERSION, "requested": [], "architectures": {"amd64": {}}},
            "lacks or misspells a field: 'sources'",
            id="section",
        ),
        pytest.param(
            {k: v for k, v in _LOCK.items() if k != "architectures"},
            "lacks or misspells a field: 'architectures'",
            id="architectures",
        ),
        pytest.param({**_LOCK, "format_version": 2}, "of format_version 2", id="format"),
        pytest.param(
            _with_amd64(
                platform={**_LOCK["architectures"]["amd64"]["platform"], "python_version": None}
            ),
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
    platform = {**_LOCK["architectures"]["amd64"]["platform"], "architecture": "s390x"}
    with pytest.raises(BaseLockError, match="'s390x'; supported: amd64, arm64"):
        _parse(_with_amd64(platform=platform))


def test_stale_lock_says_what_changed_and_how_to_fix() -> None:
    lock = _parse(_LOCK)
    check = functools.partial(
        check_lock_matches_target, lock_path="base/packages.lock.json", target="base:b"
    )
    check(lock, ("python3",), ("amd64",))
    with pytest.raises(BaseLockError) as exc:
        check(lock, ("curl",), ("amd64",))
    message = str(exc.value)
    assert "base/packages.lock.json is stale" in message
    assert "adds curl and removes python3" in message
    assert "run `pants esb-lock base:b`" in message
    with pytest.raises(BaseLockError) as exc:
        check(lock, ("python3",), ("amd64", "arm64"))
    assert str(exc.value) == (
        "base/packages.lock.json is stale: it locks packages for amd64, and the `platforms` "
        "field of base:b asks for amd64, arm64.\n\n"
        "Fix: run `pants esb-lock base:b` and commit base/packages.lock.json."
    )


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


def test_an_upstream_base_without_an_interpreter_is_refused_naming_what_is_missing() -> None:
    facts = {"architecture": "amd64", "glibc_version": "2.36", "python_version": "3.12.7"}
    with pytest.raises(BasePlatformError, match="records no interpreter"):
        BasePlatform.from_facts(facts, where="python:3.12")
