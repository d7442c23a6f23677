"""Bytecode for the Python modules of a Debian base, as `py3compile` would leave it.

The postinsts of python3.X and python3 compile the standard library and /usr/share/python3; an
image without bytecode recompiles on every start when its root is read-only or its user is not
root. Here the running interpreter compiles, so its minor version must be the base's. The files
are `unchecked-hash` pycs: their header holds a hash of the source instead of its mtime, so they
are reproducible and independent of the layer's timestamps.
"""

from __future__ import annotations

import importlib.util
import marshal
import sys
import types
from typing import Iterator

from imagetool.debian.tree import Tree, directory, regular_file
from imagetool.errors import ToolError
from imagetool.tarlayer import LayerMember

_UNCHECKED_HASH_FLAGS = 0b01


class BytecodeError(ToolError):
    """The running interpreter cannot compile for the base's Python."""


def bytecode_members(tree: Tree, python_version: str) -> Iterator[LayerMember]:
    """A `__pycache__/<module>.cpython-3X.pyc` beside each compilable module of the base."""
    minor = ".".join(python_version.split(".")[:2])
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != minor:
        raise BytecodeError(
            f"The base's Python is {python_version}, but this tool runs on Python {running}, whose "
            f"bytecode Python {minor} cannot load. Run the tool on Python {minor}, or do not "
            "compile the base's bytecode."
        )
    roots = (f"usr/lib/python{minor}", "usr/lib/python3/dist-packages", "usr/share/python3")
    for root in roots:
        for path in tree.paths_under(root):
            source = tree.file_data(path)
            if source is None or not path.endswith(".py"):
                continue
            try:
                code = compile(source, f"/{path}", "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                # Test data in other Python dialects; py3compile skips these too.
                continue
            directory_path, name = path.rsplit("/", 1)
            cache = f"{directory_path}/__pycache__"
            yield directory(cache)
            yield regular_file(
                f"{cache}/{name[:-3]}.{sys.implementation.cache_tag}.pyc",
                _unchecked_hash_pyc(source, code),
            )


def _unchecked_hash_pyc(source: bytes, code: types.CodeType) -> bytes:
    return (
        importlib.util.MAGIC_NUMBER
        + _UNCHECKED_HASH_FLAGS.to_bytes(4, "little")
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )
