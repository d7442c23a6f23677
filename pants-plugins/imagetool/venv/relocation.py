"""Making an install prefix staged on the build host a venv that is valid at `/.venv` in the
image, with no trace of the build host left in it.

uv lays the prefix out for the interpreter it runs with, the image tool's own. Here:

- `lib/python3.X/` is renamed for the target's version when the two differ;
- scripts start with `#!/.venv/bin/python`, and the RECORD rows of the distributions that own
  them are updated to match;
- what the installer records about where a wheel came from (the build host's path, the time of
  the install) is removed, with its RECORD rows;
- `pyvenv.cfg` and `bin/python*` point at the base's interpreter, and a `.pth` file puts the
  service's source directories on `sys.path`: the service's own package ships in a layer of its
  own, so that editing it leaves the venv's layers (and their cache entries) alone.

`check_no_host_paths` then proves that no path of the build host is left before the layer is
packed, since one would make the layer differ between machines.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import posixpath
import sys
from pathlib import Path
from typing import Mapping, Sequence

from imagetool.venv.bytecode import host_minor_version
from imagetool.venv.indexes import VenvBuildError
from imagetool.venv.target_python import TargetPython

VENV_PATH = "/.venv"
SOURCE_PATHS_PTH = "esb_service_sources.pth"


def site_packages_of(venv_dir: Path, target: TargetPython) -> Path:
    return venv_dir / "lib" / f"python{target.minor_version}" / "site-packages"


def relocate_version_directories(venv_dir: Path, target: TargetPython) -> None:
    """uv lays the prefix out for the interpreter it runs with (`lib/python3.11/...`); the
    target's Python looks in `lib/python<its X.Y>/`."""
    host, wanted = host_minor_version(), target.minor_version
    if host == wanted:
        return
    for parent in (venv_dir / "lib", venv_dir / "include", venv_dir / "include" / "site"):
        source = parent / f"python{host}"
        if source.is_dir() and not source.is_symlink():
            source.rename(parent / f"python{wanted}")


def rewrite_script_shebangs(bin_dir: Path) -> dict[Path, bytes]:
    """Point the scripts uv wrote for the host's interpreter at the venv's; returns them."""
    executable = sys.executable
    shell_quoted = "'" + executable.replace("'", "'\"'\"'") + "'"
    host_shebangs = (
        f"#!{executable}\n".encode(),
        # uv's form for interpreter paths too long (or too odd) for the kernel's shebang.
        f"#!/bin/sh\n'''exec' {shell_quoted} \"$0\" \"$@\"\n' '''\n".encode(),
    )
    venv_shebang = f"#!{VENV_PATH}/bin/python\n".encode()
    rewritten: dict[Path, bytes] = {}
    scripts = sorted(bin_dir.iterdir()) if bin_dir.is_dir() else []
    for script in scripts:
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        for shebang in host_shebangs:
            if content.startswith(shebang):
                content = venv_shebang + content[len(shebang) :]
                script.write_bytes(content)
                rewritten[script] = content
                break
    return rewritten


# What an installer records about where a wheel came from: for a locally built wheel, the build
# host's path (PEP 610's direct_url.json) and the time of the install (uv's uv_cache.json).
_INSTALL_PROVENANCE = ("direct_url.json", "uv_cache.json")


def remove_install_provenance(site_packages: Path) -> None:
    for dist_info in sorted(site_packages.glob("*.dist-info")):
        removed = {name for name in _INSTALL_PROVENANCE if (dist_info / name).is_file()}
        if not removed:
            continue
        for name in removed:
            (dist_info / name).unlink()
        record = dist_info / "RECORD"
        rows = [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row]
        kept = [
            row
            for row in rows
            if posixpath.basename(row[0]) not in removed
            or not row[0].startswith(dist_info.name + "/")
        ]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        record.write_text(text.getvalue(), encoding="utf-8")


def update_records(site_packages: Path, rewritten: Mapping[Path, bytes]) -> None:
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        rows = [row for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))) if row]
        changed = False
        for row in rows:
            content = rewritten.get(Path(os.path.normpath(site_packages / row[0])))
            if content is not None:
                row[1:3] = [f"sha256={_record_digest(content)}", str(len(content))]
                changed = True
        if changed:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)
            record.write_text(text.getvalue(), encoding="utf-8")


def _record_digest(content: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def write_venv_files(venv_dir: Path, target: TargetPython, source_paths: Sequence[str]) -> None:
    """`pyvenv.cfg`, `bin/python*` (links to the base's interpreter) and the `.pth` file that
    puts `source_paths` (absolute, in the image) on `sys.path`."""
    for path in source_paths:
        if not posixpath.isabs(path):
            raise VenvBuildError(f"The source path {path!r} is not absolute.")
    (venv_dir / "pyvenv.cfg").write_text(
        f"home = {posixpath.dirname(target.interpreter)}\n"
        "include-system-site-packages = false\n"
        f"version = {target.version}\n"
        f"executable = {target.interpreter}\n"
    )
    bin_dir = venv_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "python3", f"python{target.minor_version}"):
        (bin_dir / name).symlink_to(target.interpreter)
    site_packages = site_packages_of(venv_dir, target)
    site_packages.mkdir(parents=True, exist_ok=True)
    (site_packages / SOURCE_PATHS_PTH).write_text("".join(f"{path}\n" for path in source_paths))


def check_no_host_paths(venv_dir: Path, host_paths: Sequence[str]) -> None:
    needles = [path.encode() for path in host_paths]
    for path in sorted(venv_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        content = path.read_bytes()
        for needle in needles:
            if needle in content:
                raise VenvBuildError(
                    f"{VENV_PATH}/{path.relative_to(venv_dir).as_posix()} contains the build "
                    f"host's path {needle.decode()!r}, which would make the layer differ between "
                    "machines. This is a bug of the image tool: please report it with the "
                    "service's uv.lock."
                )
