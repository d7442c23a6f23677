"""The `uv` binary, taken from uv's wheel on PyPI and checked against the wheel's own RECORD.

The same bytes are run on the build host to install venvs and shipped in every image as
`/usr/local/bin/uv`, so the image carries exactly the uv that built its venv.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from imagetool.errors import ToolError
from imagetool.tarlayer import LayerMember

UV_LAYER_PATH = "usr/local/bin/uv"

_BINARY_PATH = re.compile(r"uv-(?P<version>[^/]+)\.data/scripts/uv")


class UvWheelError(ToolError, ValueError):
    """The file is not a uv wheel, or its binary does not match the wheel's RECORD."""


@dataclass(frozen=True)
class UvBinary:
    version: str
    executable: bytes


def read_uv_binary(wheel: Path) -> UvBinary:
    """The `uv` executable inside `wheel`, verified against the sha256 and size in its RECORD."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            matches = [m for m in (_BINARY_PATH.fullmatch(n) for n in archive.namelist()) if m]
            if len(matches) != 1:
                raise UvWheelError(
                    f"{wheel} is not a uv wheel: it should hold exactly one "
                    f"`uv-<version>.data/scripts/uv`, and holds {len(matches)}."
                )
            member, version = matches[0].group(0), matches[0].group("version")
            record_path = f"uv-{version}.dist-info/RECORD"
            try:
                record = archive.read(record_path).decode()
            except KeyError:
                raise UvWheelError(
                    f"{wheel} has no {record_path}, so its uv binary cannot be verified."
                ) from None
            executable = archive.read(member)
    except zipfile.BadZipFile as e:
        raise UvWheelError(f"{wheel} is not a wheel (a zip file): {e}.") from None
    _verify_against_record(wheel, member, executable, record)
    return UvBinary(version, executable)


def _verify_against_record(wheel: Path, member: str, data: bytes, record: str) -> None:
    rows = {row[0]: row for row in csv.reader(io.StringIO(record)) if row}
    row = rows.get(member)
    if row is None or len(row) != 3 or not row[1].startswith("sha256="):
        raise UvWheelError(f"{wheel}'s RECORD lists no sha256 for {member}.")
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if row[1] != f"sha256={digest}" or row[2] != str(len(data)):
        raise UvWheelError(
            f"{member} in {wheel} does not match the wheel's RECORD (expected {row[1]}, "
            f"{row[2]} bytes; found sha256={digest}, {len(data)} bytes): the wheel is corrupt "
            "or was tampered with."
        )


def extract_uv_binary(wheel: Path, dest_dir: Path) -> Path:
    """Write the verified `uv` executable from `wheel` to `dest_dir/uv` and return its path."""
    binary = read_uv_binary(wheel)
    path = dest_dir / "uv"
    path.write_bytes(binary.executable)
    os.chmod(path, 0o755)
    return path


def uv_layer_members(binary: UvBinary) -> list[LayerMember]:
    """The layer that installs `binary` as `/usr/local/bin/uv` (0755, root:root)."""
    info = tarfile.TarInfo(UV_LAYER_PATH)
    info.mode = 0o755
    info.uname = info.gname = "root"
    info.size = len(binary.executable)
    return [(info, binary.executable)]
