from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from imagetool.venv.uv_binary import (
    UV_LAYER_PATH,
    UvBinary,
    UvWheelError,
    extract_uv_binary,
    read_uv_binary,
    uv_layer_members,
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
