from __future__ import annotations

import pytest
from pants.testutil.option_util import create_subsystem

from esb.subsystems.uv import UV_CACHE_PATH, UvSubsystem, UvVersionError, UvWheel
from esb_contract.pinned_url import PinnedUrl

_KNOWN = ["0.13.9|linux_x86_64|" + "ab" * 32 + "|123|https://files.example/uv-0.13.9-x86_64.whl"]


def test_known_wheel_is_pinned_by_sha256_and_size() -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN)
    pin = uv.wheel_pin("linux_x86_64")
    assert pin == PinnedUrl("https://files.example/uv-0.13.9-x86_64.whl", "ab" * 32, 123)
    # A process takes the pin and the named cache it fetches the wheel into.
    wheel = UvWheel(pin)
    assert wheel.argv == ("--uv", pin.to_argument(), "--uv-cache", UV_CACHE_PATH)
    assert dict(wheel.append_only_caches) == {"esb_uv": UV_CACHE_PATH}


def test_unknown_platform_says_how_to_fix() -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN)
    with pytest.raises(UvVersionError) as exc:
        uv.wheel_pin("linux_arm64")
    assert "No uv 0.13.9 wheel for the platform linux_arm64" in str(exc.value)
    assert "0.13.9|linux_arm64|<sha256>|<size>|<url>" in str(exc.value)


@pytest.mark.parametrize(
    "value", ["2026-11-01", "2026-11-01T00:00:00Z", "2026-11-01T08:30:00+02:00"]
)
def test_exclude_newer_reaches_uv_through_its_environment(value: str) -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN, exclude_newer=value)
    assert dict(uv.resolution_env()) == {"UV_EXCLUDE_NEWER": value}


def test_without_exclude_newer_the_environment_is_empty() -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN, exclude_newer=None)
    assert dict(uv.resolution_env()) == {}


def test_a_malformed_exclude_newer_names_the_option_and_the_fix() -> None:
    uv = create_subsystem(
        UvSubsystem, version="0.13.9", known_versions=_KNOWN, exclude_newer="last tuesday"
    )
    with pytest.raises(UvVersionError) as exc:
        uv.resolution_env()
    assert "`[esb-uv].exclude_newer` is 'last tuesday'" in str(exc.value)
    assert "2026-11-01T00:00:00Z" in str(exc.value)
