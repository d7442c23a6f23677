from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from esb_contract.pinned_url import PinnedUrl
from imagetool.venv.uv_binary import (
    UV_LAYER_PATH,
    UvBinary,
    UvWheelError,
    extract_uv_binary,
    read_uv_binary,
    uv_executable,
    uv_layer_members,
    uv_wheel,
)


def make_wheel(path: Path, binary: bytes, recorded: bytes) -> Path:
    """A wheel shaped like uv's, whose RECORD lists the sha256 and size of `recorded`."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(recorded).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("uv-1.2.3.data/scripts/uv", binary)
        record = f"uv-1.2.3.data/scripts/uv,sha256={digest},{len(recorded)}\n"
        wheel.writestr("uv-1.2.3.dist-info/RECORD", record + "uv-1.2.3.dist-info/RECORD,,\n")
    return path


def test_reads_the_binary_of_a_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "uv.whl", b"\x7fELF binary", b"\x7fELF binary")
    assert read_uv_binary(wheel) == UvBinary("1.2.3", b"\x7fELF binary")


def test_rejects_a_binary_that_does_not_match_the_record(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "uv.whl", b"\x7fELF tampered", b"\x7fELF binary")
    with pytest.raises(UvWheelError, match="does not match the wheel's RECORD"):
        read_uv_binary(wheel)


def test_rejects_a_wheel_without_uv(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as wheel:
        wheel.writestr("other-1.0.dist-info/RECORD", "")
    with pytest.raises(UvWheelError, match="is not a uv wheel"):
        read_uv_binary(tmp_path / "other.whl")


def test_layer_installs_uv_as_root_owned_executable() -> None:
    [(info, data)] = uv_layer_members(UvBinary("1.2.3", b"binary"))
    assert (info.name, info.mode, info.uid, info.gid, info.uname, info.gname, info.size) == (
        UV_LAYER_PATH,
        0o755,
        0,
        0,
        "root",
        "root",
        6,
    )
    assert data == b"binary"


def test_extracts_a_runnable_uv_from_the_pypi_wheel(uv_wheel: Path, tmp_path: Path) -> None:
    binary = extract_uv_binary(uv_wheel, tmp_path)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("uv 0.13.9 ")


def _pin(wheel: Path) -> str:
    content = wheel.read_bytes()
    return PinnedUrl(
        wheel.absolute().as_uri(), hashlib.sha256(content).hexdigest(), len(content)
    ).to_argument()


def test_a_pinned_wheel_is_fetched_and_extracted_into_the_cache_once(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "uv-1.2.3.whl", b"binary", b"binary")
    pin = _pin(wheel)
    cache = tmp_path / "cache"
    binary = uv_executable(pin, cache, tmp_path / "scratch-1")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert binary == cache / sha256 / "uv"
    assert binary.read_bytes() == b"binary" and binary.stat().st_mode & 0o111
    # Kept: later steps neither download nor extract, even with the wheel gone from its URL.
    wheel.unlink()
    assert uv_executable(pin, cache, tmp_path / "scratch-2") == binary
    assert uv_wheel(pin, cache, tmp_path / "scratch-3") == cache / f"{sha256}.whl"
    assert sorted(p.name for p in cache.iterdir()) == [sha256, f"{sha256}.whl"]


def test_a_pinned_wheel_that_is_not_the_pinned_file_names_the_option_to_fix(
    tmp_path: Path,
) -> None:
    wheel = make_wheel(tmp_path / "uv-1.2.3.whl", b"binary", b"binary")
    other = PinnedUrl(wheel.absolute().as_uri(), "0" * 64, wheel.stat().st_size)
    cache = tmp_path / "cache"
    with pytest.raises(UvWheelError) as error:
        uv_executable(other.to_argument(), cache, tmp_path)
    message = str(error.value)
    assert message.startswith(f"uv's wheel {other.url} cannot be had as pinned (sha256 {'0' * 64}")
    assert "the file it serves is not the pinned one" in message
    assert "`[esb-uv].known_versions`" in message
    # Nothing unchecked is kept.
    assert list(cache.iterdir()) == []


def test_a_binary_that_does_not_match_its_record_is_not_cached(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "uv-1.2.3.whl", b"tampered", b"binary")
    cache = tmp_path / "cache"
    with pytest.raises(UvWheelError, match="does not match the wheel's RECORD"):
        uv_executable(_pin(wheel), cache, tmp_path)
    # The wheel matches its pin and is kept; nothing of the extraction is.
    assert [p.name for p in cache.iterdir()] == [
        f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}.whl"
    ]
