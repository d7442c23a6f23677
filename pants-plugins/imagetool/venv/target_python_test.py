"""The base image's Python as the tool takes it: a full version and an absolute interpreter."""

from __future__ import annotations

import pytest

from imagetool.venv.indexes import VenvBuildError
from imagetool.venv.target_python import TargetPython


@pytest.mark.parametrize(
    "version, interpreter, message",
    [
        pytest.param("3.11", "/usr/bin/python3.11", "not of the form X.Y.Z", id="minor-only"),
        pytest.param("3.11.2rc1", "/usr/bin/python3.11", "not of the form X.Y.Z", id="pre-release"),
        pytest.param("3.11.2", "usr/bin/python3.11", "not absolute", id="relative-interpreter"),
    ],
)
def test_target_python_rejects(version: str, interpreter: str, message: str) -> None:
    with pytest.raises(VenvBuildError, match=message):
        TargetPython(version, "x86_64-manylinux_2_36", interpreter)
