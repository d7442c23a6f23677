"""The `uv` binary, taken from uv's wheel on PyPI and checked against the wheel's own RECORD.

The same bytes are run on the build host to install venvs and shipped in every image as
`/usr/local/bin/uv`, so the image carries exactly the uv that built its venv.

The backend passes uv as a pinned URL (`esb_contract.pinned_url`) and a cache directory: the
wheel is fetched into the cache once (`imagetool.pinned`), and its binary extracted beside it
once, so that neither the download nor the extraction is paid by every step that runs uv, and
a step whose output is cached needs neither. A local path (a wheel or a binary) also works.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from esb_contract.pinned_url import PinnedUrl
from imagetool import pinned
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


def uv_wheel(source: str, cache: Optional[Path], scratch: Path) -> Path:
    """uv's wheel: `source` itself if it is a path, else fetched as pinned into `cache` (or into
    `scratch`, kept for this run alone)."""
    pin = PinnedUrl.from_argument(source)
    if pin is None:
        return Path(source)
    try:
        return pinned.fetch(pin, cache or scratch, ".whl")
    except pinned.PinnedFetchError as e:
        raise UvWheelError(
            f"uv's wheel {pin.url} cannot be had as pinned (sha256 {pin.sha256}, {pin.size} "
            f"bytes): {e.cause}.\nThe download reported: {e.reported.strip()}\n\n"
            "Fix: check that the index (or its mirror) is reachable from this machine; if the "
            "pin itself is wrong, correct the wheel's line in `[esb-uv].known_versions`."
        ) from None


def uv_executable(source: str, cache: Optional[Path], scratch: Path) -> Path:
    """The `uv` binary of `source` (a pinned URL, a wheel or a binary). From a pinned URL with a
    cache, it is extracted into the cache once, as `<wheel's sha256>/uv`: the directory enters
    the cache by an atomic rename once its binary has been checked against the wheel's RECORD,
    and is then used as it is, as Pants uses the venvs of its named caches."""
    pin = PinnedUrl.from_argument(source)
    if pin is None:
        path = Path(source)
        return extract_uv_binary(path, scratch) if path.suffix == ".whl" else path
    if cache is None:
        return extract_uv_binary(uv_wheel(source, None, scratch), scratch)
    extracted = cache / pin.sha256
    if not (extracted / "uv").is_file():
        wheel = uv_wheel(source, cache, scratch)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".partial-"))
        try:
            extract_uv_binary(wheel, staging)
            if extracted.exists() and not (extracted / "uv").is_file():
                shutil.rmtree(extracted)  # damaged: replaced
            os.rename(staging, extracted)
        except OSError:
            # Another step extracted it first.
            if not (extracted / "uv").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return extracted / "uv"


def uv_layer_members(binary: UvBinary) -> list[LayerMember]:
    """The layer that installs `binary` as `/usr/local/bin/uv` (0755, root:root)."""
    info = tarfile.TarInfo(UV_LAYER_PATH)
    info.mode = 0o755
    info.uname = info.gname = "root"
    info.size = len(binary.executable)
    return [(info, binary.executable)]
