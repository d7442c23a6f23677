from __future__ import annotations

import tempfile
from pathlib import Path

from imagetool.venv.uv_process import Uv


def test_uv_keeps_its_scratch_files_where_the_process_keeps_its_own(
    tmp_path: Path, scratch_directory: Path
) -> None:
    # A stand-in for uv that prints the environment it was given.
    binary = tmp_path / "uv"
    binary.write_text('#!/bin/sh\nprintf "%s|%s" "$TMPDIR" "$HOME"\n')
    binary.chmod(0o755)

    result = Uv(binary, network_env={"SSL_CERT_FILE": "/ca.pem"}).run([], cwd=tmp_path)

    assert result.stdout == f"{scratch_directory}|"
    assert tempfile.gettempdir() == str(scratch_directory)
