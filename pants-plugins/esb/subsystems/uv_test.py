from __future__ import annotations

import pytest

from esb.subsystems.uv import UvSubsystem, UvVersionError
from pants.testutil.option_util import create_subsystem

_KNOWN = ["0.13.9|linux_x86_64|" + "ab" * 32 + "|123|https://files.example/uv-0.13.9-x86_64.whl"]


def test_known_wheel_is_pinned_by_sha256_and_size() -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN)
    download = uv.wheel_download("linux_x86_64")
    assert download.url == "https://files.example/uv-0.13.9-x86_64.whl"
    assert download.expected_digest.fingerprint == "ab" * 32
    assert download.expected_digest.serialized_bytes_length == 123


def test_unknown_platform_says_how_to_fix() -> None:
    uv = create_subsystem(UvSubsystem, version="0.13.9", known_versions=_KNOWN)
    with pytest.raises(UvVersionError) as exc:
        uv.wheel_download("linux_arm64")
    assert "No uv 0.13.9 wheel for the platform linux_arm64" in str(exc.value)
    assert "0.13.9|linux_arm64|<sha256>|<size>|<url>" in str(exc.value)
