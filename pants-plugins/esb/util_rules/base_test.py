from __future__ import annotations

import json

import pytest

from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException

from esb.util_rules.base import (
    BaseLockError,
    check_base_files,
    check_lock_matches_target,
    parse_base_lock,
)
from esb.util_rules.platform import BasePlatform, BasePlatformError

_LOCK = {
    "packages": [
        {
            "name": "python3",
            "url": "https://deb.debian.org/debian/pool/main/p/python3-defaults/python3_3.11.2-1+b1_amd64.deb",
            "sha256": "ab" * 32,
            "size": 26000,
        }
    ],
    "platform": {"architecture": "amd64", "glibc_version": "2.36", "python_version": "3.11.2"},
    "requested": ["python3"],
}


def _parse(lock: dict):
    return parse_base_lock(json.dumps(lock).encode(), lock_path="base/packages.lock.json", target="base:b")


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
        pytest.param({**_LOCK, "packages": [{"name": "x"}]}, "is malformed", id="package"),
        pytest.param({k: v for k, v in _LOCK.items() if k != "platform"}, "no complete `platform`", id="platform"),
    ],
)
def test_malformed_lock_names_file_and_fix(lock: dict, expected: str) -> None:
    with pytest.raises((BaseLockError, BasePlatformError)) as exc:
        _parse(lock)
    assert "base/packages.lock.json" in str(exc.value)
    assert expected in str(exc.value)
    assert "pants esb-lock base:b" in str(exc.value)


def test_unsupported_architecture() -> None:
    with pytest.raises(BasePlatformError, match="'s390x'; supported: amd64, arm64"):
        _parse({**_LOCK, "platform": {**_LOCK["platform"], "architecture": "s390x"}})


def test_stale_lock_says_what_changed_and_how_to_fix() -> None:
    lock = _parse(_LOCK)
    check_lock_matches_target(lock, ("python3",), lock_path="base/packages.lock.json", target="base:b")
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
    assert message.startswith("The `sources` field of the target base:b selects no packages.lock.json in base/.")
    assert "`pants esb-lock base:b`" in message


def test_an_upstream_base_has_no_lock() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_base_files(_ADDRESS, (*_SCRIPTS, "base/packages.lock.json"), upstream=True)
    message = str(exc.value)
    assert "selects base/packages.lock.json, but the base is built on its `upstream` image" in message
    assert "Fix: delete base/packages.lock.json" in message
    assert 'sources=["ensure_ca_trust.sh", "entrypoint.sh"]' in message


def test_an_upstream_base_needs_its_scripts() -> None:
    with pytest.raises(InvalidFieldException, match="selects no entrypoint.sh in base/"):
        check_base_files(_ADDRESS, _SCRIPTS[:1], upstream=True)
