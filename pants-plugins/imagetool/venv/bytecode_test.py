"""Bytecode only for the minor version of the image tool's own interpreter."""

from __future__ import annotations

import sys

from imagetool.venv.bytecode import bytecode_incompatibility
from imagetool.venv.conftest import DEBIAN_12, PYTHON_3_12


def test_bytecode_only_for_the_tool_interpreters_minor_version() -> None:
    assert bytecode_incompatibility(DEBIAN_12) is None
    reason = bytecode_incompatibility(PYTHON_3_12)
    assert reason == (
        f"the image tool runs on cpython {sys.version_info.major}.{sys.version_info.minor} and the "
        "base's Python is CPython 3.12; bytecode is valid only for the minor version that wrote it"
    )
