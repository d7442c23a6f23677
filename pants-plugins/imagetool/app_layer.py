"""The app layer: the service's own files under `/app`, which `assemble` writes as the image's top
layer (`esb_contract.image_spec.AppLayer`).

The files go in without the build files of Pants (they describe the repository, not the
service), and their modules are compiled in `unchecked-hash` mode with their in-image paths, as
the venv's are, when this interpreter writes bytecode the base's Python reads.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from esb_contract.image_spec import APP_PATH, AppLayer
from imagetool.inventory import LayerInventory, layer_inventory
from imagetool.tarlayer import LayerBlob, members_from_directory, write_layer
from imagetool.venv.bytecode import bytecode_incompatibility, compile_modules
from imagetool.venv.target_python import TargetPython


def is_build_file(relative_path: str, patterns: Sequence[str]) -> bool:
    name = relative_path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class AppFiles:
    root: Path
    uncompiled_modules: tuple[str, ...]
    bytecode_skipped: Optional[str]

    def notes(self) -> list[str]:
        """What the build says of the files it ships without bytecode."""
        notes = [
            f"{module} does not compile, and ships without bytecode."
            for module in self.uncompiled_modules
        ]
        if self.bytecode_skipped:
            notes.append(f"{APP_PATH} ships without bytecode: {self.bytecode_skipped}.")
        return notes


def stage_app_files(
    files: Path, staged: Path, target: TargetPython, *, build_file_patterns: Sequence[str]
) -> AppFiles:
    """Copy the service's files from `files` to `staged` (which must not exist) without build
    files (the file name patterns of Pants' `[GLOBAL].build_patterns`), and compile their modules
    for `/app` when this interpreter can (see `bytecode_incompatibility`)."""
    staged.mkdir(parents=True)
    for path in sorted(files.rglob("*")):
        relative = path.relative_to(files).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if is_build_file(relative, build_file_patterns):
            continue
        destination = staged / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            destination.symlink_to(path.readlink())
        else:
            shutil.copy2(path, destination)
    skipped = bytecode_incompatibility(target)
    uncompiled = [] if skipped else compile_modules(staged, staged, APP_PATH)
    return AppFiles(staged, tuple(uncompiled), skipped)


@dataclass(frozen=True)
class WrittenAppLayer:
    path: Path
    """The layer's blob."""
    blob: LayerBlob
    inventory: LayerInventory
    notes: tuple[str, ...]


def write_app_layer(app: AppLayer, scratch: Path, *, mtime: int) -> WrittenAppLayer:
    """Write the app layer's blob, and stage its files, in `scratch` (an empty directory)."""
    target = TargetPython(app.python_version, app.python_platform, app.interpreter)
    staged = stage_app_files(
        Path(app.directory), scratch / "app", target, build_file_patterns=app.build_file_patterns
    )
    members = list(members_from_directory(staged.root, prefix=APP_PATH.lstrip("/")))
    path = scratch / "app.tar.gz"
    blob = write_layer(members, path, mtime=mtime)
    return WrittenAppLayer(path, blob, layer_inventory(members), tuple(staged.notes()))
