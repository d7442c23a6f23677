from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Sequence

import pytest

from imagetool.cli import main
from imagetool.venv.conftest import DEBIAN_12, MakeProject


def run_command(argv: Sequence[str]) -> int:
    return main(argv)


def test_uv_layer(uv_wheel: Path, tmp_path: Path) -> None:
    layer, descriptor = tmp_path / "uv.tar.gz", tmp_path / "uv.json"
    argv = ["uv-layer", f"--wheel={uv_wheel}", f"--out-blob={layer}", f"--out-descriptor={descriptor}"]

    assert run_command(argv) == 0

    blob = json.loads(descriptor.read_text())
    assert sorted(blob) == ["diff_id", "digest", "media_type", "size"]
    assert blob["size"] == layer.stat().st_size
    with tarfile.open(layer) as archive:
        assert archive.getnames() == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/uv"]
        uv = archive.getmember("usr/local/bin/uv")
    assert (uv.mode, uv.uid, uv.gid, uv.uname, uv.gname) == (0o755, 0, 0, "root", "root")


def test_venv_layer(uv_wheel: Path, demo_project: Path, tmp_path: Path) -> None:
    layer, descriptor, packages = (
        tmp_path / "venv.tar.gz",
        tmp_path / "venv.json",
        tmp_path / "pk.json",
    )
    argv = [
        "venv-layer",
        f"--project={demo_project}",
        f"--uv={uv_wheel}",
        f"--python-version={DEBIAN_12.version}",
        f"--python-platform={DEBIAN_12.platform}",
        f"--interpreter={DEBIAN_12.interpreter}",
        "--source-path=/app/src",
        "--source-path=/app/tools",
        f"--out-blob={layer}",
        f"--out-descriptor={descriptor}",
        f"--out-packages={packages}",
    ]

    assert run_command(argv) == 0

    assert json.loads(packages.read_text()) == [
        {"name": "idna", "version": "3.20"},
        {"name": "markupsafe", "version": "3.0.2"},
        {"name": "six", "version": "1.17.0"},
    ]
    assert json.loads(descriptor.read_text())["size"] == layer.stat().st_size
    with tarfile.open(layer) as archive:
        pth = archive.extractfile(".venv/lib/python3.11/site-packages/esb_service_sources.pth")
        assert pth is not None and pth.read() == b"/app/src\n/app/tools\n"
        assert archive.getmember(".venv/bin/python").linkname == "/usr/bin/python3.11"


def test_check_lock_reports_a_stale_lock_without_a_traceback(
    uv_wheel: Path, make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project("stale-cli", ["six==1.17.0"])
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('"six==1.17.0"', '"six==1.16.0"')
    )
    argv = ["check-lock", f"--project={project}", f"--uv={uv_wheel}", "--python-version=3.11.2"]

    assert run_command(argv) == 1

    stderr = capsys.readouterr().err
    assert f"{project}/uv.lock does not match {project}/pyproject.toml" in stderr
    assert "Traceback" not in stderr


def test_uv_layer_rejects_a_file_that_is_not_a_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_wheel = tmp_path / "uv.whl"
    not_a_wheel.write_bytes(b"not a zip")
    argv = [
        "uv-layer",
        f"--wheel={not_a_wheel}",
        f"--out-blob={tmp_path / 'l'}",
        f"--out-descriptor={tmp_path / 'd'}",
    ]

    assert run_command(argv) == 1
    assert "is not a wheel" in capsys.readouterr().err
