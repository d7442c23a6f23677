"""Scripts uv wrote for the build host's interpreter, pointed at the venv's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imagetool.venv.relocation import rewrite_script_shebangs


def test_rewrites_the_shell_wrapper_uv_writes_for_long_interpreter_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_path = "/" + "x" * 130 + "/bin/python"
    monkeypatch.setattr(sys, "executable", long_path)
    script = tmp_path / "tool"
    script.write_bytes(
        b"#!/bin/sh\n'''exec' '" + long_path.encode() + b"' \"$0\" \"$@\"\n' '''\nimport sys\n"
    )
    shell_script = tmp_path / "helper.sh"
    shell_script.write_bytes(b"#!/bin/sh\necho hi\n")

    assert rewrite_script_shebangs(tmp_path) == {script: b"#!/.venv/bin/python\nimport sys\n"}
    assert script.read_bytes() == b"#!/.venv/bin/python\nimport sys\n"
    assert shell_script.read_bytes() == b"#!/bin/sh\necho hi\n"
