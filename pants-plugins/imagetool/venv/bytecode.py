"""Bytecode for the venv and the service's modules, compiled ahead of time so the image need not
write any.

Modules are compiled in `unchecked-hash` mode with their in-image paths as file names, so the
bytecode is a pure function of the sources. Only an interpreter of the target's major.minor
version writes bytecode the target reads (the format changes with every minor release), so for
a base with another Python (e.g. 3.12 in `python:3.12-slim-bookworm`, while the tool runs on
3.11) nothing is compiled, and `bytecode_incompatibility` says why.
"""

from __future__ import annotations

import py_compile
import sys
import warnings
from pathlib import Path
from typing import Optional

from imagetool.venv.target_python import TargetPython


def host_minor_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def bytecode_incompatibility(target: TargetPython) -> Optional[str]:
    """Why this interpreter cannot compile bytecode for `target`, or None when it can.

    A `.pyc` file starts with the magic number of the CPython minor release that wrote it, and
    any other release ignores it (and, with `PYTHONDONTWRITEBYTECODE=1` as in our images,
    compiles the module anew at every start); the code objects inside change between minor
    releases too. So only CPython X.Y compiles for X.Y.
    """
    host = host_minor_version()
    if sys.implementation.name == "cpython" and host == target.minor_version:
        return None
    return (
        f"the image tool runs on {sys.implementation.name} {host} and the base's Python is "
        f"CPython {target.minor_version}; bytecode is valid only for the minor version that "
        "wrote it"
    )


def compile_modules(directory: Path, root: Path, in_image_root: str) -> list[str]:
    """Compile every module under `directory` in `unchecked-hash` mode, each named by its path
    in the image (`in_image_root` plus its path under `root`); returns the in-image paths of
    those that do not compile."""
    uncompiled = []
    for source in sorted(directory.rglob("*.py")):
        if source.is_symlink() or not source.is_file():
            continue
        in_image_path = f"{in_image_root}/{source.relative_to(root).as_posix()}"
        try:
            # Compiling third-party code warns about its style (e.g. invalid escape sequences),
            # which is noise here: it is not ours to fix, and running it would warn again anyway.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                py_compile.compile(
                    str(source),
                    dfile=in_image_path,
                    doraise=True,
                    optimize=0,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
        except py_compile.PyCompileError:
            uncompiled.append(in_image_path)
    return uncompiled
