from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Sequence

import pytest

from esb_contract.pinned_url import PinnedUrl
from imagetool.cli import main
from imagetool.venv.commands import uv_from
from imagetool.venv.conftest import TARGET_ARGS, MakeProject


def run_command(argv: Sequence[str]) -> int:
    return main(argv)


def test_uv_layer(uv_wheel: Path, tmp_path: Path) -> None:
    layer, descriptor = tmp_path / "uv.tar.gz", tmp_path / "uv.json"
    content = uv_wheel.read_bytes()
    # As the backend passes it: pinned, fetched into the cache.
    pin = PinnedUrl(uv_wheel.absolute().as_uri(), hashlib.sha256(content).hexdigest(), len(content))
    argv = [
        "uv-layer",
        f"--uv={pin.to_argument()}",
        f"--uv-cache={tmp_path / 'uv-cache'}",
        f"--out-blob={layer}",
        f"--out-descriptor={descriptor}",
    ]

    assert run_command(argv) == 0

    blob = json.loads(descriptor.read_text())
    assert sorted(blob) == ["diff_id", "digest", "media_type", "size"]
    assert blob["size"] == layer.stat().st_size
    with tarfile.open(layer) as archive:
        assert archive.getnames() == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/uv"]
        uv = archive.getmember("usr/local/bin/uv")
    assert (uv.mode, uv.uid, uv.gid, uv.uname, uv.gname) == (0o755, 0, 0, "root", "root")
    assert [p.name for p in (tmp_path / "uv-cache").iterdir()] == [f"{pin.sha256}.whl"]


def read_layer(blob: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(blob) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_export_lock_writes_one_requirement_per_distribution_for_the_target(
    uv_wheel: Path, make_project: MakeProject, tmp_path: Path
) -> None:
    # colorama is locked for Windows only (click's marker): it has no place in a Linux image.
    project = make_project("export", ["six==1.17.0", "click==8.1.8"])
    out = tmp_path / "export.json"
    argv = ["export-lock", f"--project={project}", f"--uv={uv_wheel}", *TARGET_ARGS, f"--out={out}"]

    assert run_command(argv) == 0

    exported = json.loads(out.read_text())
    assert [d["name"] for d in exported["distributions"]] == ["click", "six"]
    six = exported["distributions"][1]["requirement"]
    assert six.startswith("six==1.17.0 \\\n") and six.count("--hash=sha256:") == 2
    assert exported["local_directories"] == []


def test_export_lock_keeps_a_cache_that_never_decides_the_check(
    uv_wheel: Path, make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("cached-export", ["six==1.17.0"])
    cache = tmp_path / "offline-cache"

    def export_lock(out: Path, *cached: str) -> int:
        argv = [f"--project={project}", f"--uv={uv_wheel}", *TARGET_ARGS, f"--out={out}"]
        return run_command(["export-lock", *argv, *cached])

    outputs = [tmp_path / name for name in ("none.json", "first.json", "second.json")]
    assert export_lock(outputs[0]) == 0
    assert export_lock(outputs[1], f"--cache-dir={cache}") == 0
    assert export_lock(outputs[2], f"--cache-dir={cache}") == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == outputs[2].read_bytes()
    # What the checks keep is uv's record of the interpreter; no index answered them.
    buckets = {path.name.rsplit("-", 1)[0] for path in cache.iterdir() if path.is_dir()}
    assert "interpreter" in buckets
    assert not buckets & {"simple", "wheels", "archive", "flat-index"}
    # A lock gone stale is refused with the cache as without it.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.17.0"', '"six==1.16.0"'))
    assert export_lock(tmp_path / "stale.json", f"--cache-dir={cache}") == 1
    assert export_lock(tmp_path / "stale.json") == 1


def test_distribution_layer_holds_one_distribution_and_no_venv_files(
    uv_wheel: Path, make_project: MakeProject, tmp_path: Path
) -> None:
    project = make_project("one-distribution", ["idna==3.20"])
    export = tmp_path / "export.json"
    assert (
        run_command(
            [
                "export-lock",
                f"--project={project}",
                f"--uv={uv_wheel}",
                *TARGET_ARGS,
                f"--out={export}",
            ]
        )
        == 0
    )
    (idna,) = json.loads(export.read_text())["distributions"]
    layer, descriptor, inventory = (
        tmp_path / n for n in ("l.tar.gz", "l.json", "l.inventory.json")
    )
    argv = [
        "distribution-layer",
        f"--requirement={idna['requirement']}",
        f"--uv={uv_wheel}",
        *TARGET_ARGS,
        f"--out-blob={layer}",
        f"--out-descriptor={descriptor}",
        f"--out-inventory={inventory}",
    ]

    assert run_command(argv) == 0

    members = read_layer(layer)
    site_packages = ".venv/lib/python3.11/site-packages"
    assert f"{site_packages}/idna/__pycache__/core.cpython-311.pyc" in members
    assert f"{site_packages}/idna-3.20.dist-info/RECORD" in members
    assert ".venv/pyvenv.cfg" not in members and ".venv/bin/python" not in members
    records = json.loads(inventory.read_text())["records"]
    assert [e["name"] for entries in records.values() for e in entries] == ["idna"]


def test_venv_layer_without_local_packages_is_the_venv_files_alone(tmp_path: Path) -> None:
    layer, descriptor = tmp_path / "venv.tar.gz", tmp_path / "venv.json"
    argv = [
        "venv-layer",
        *TARGET_ARGS,
        "--source-path=/app/src",
        "--source-path=/app/tools",
        f"--out-blob={layer}",
        f"--out-descriptor={descriptor}",
    ]

    assert run_command(argv) == 0

    assert json.loads(descriptor.read_text())["size"] == layer.stat().st_size
    members = read_layer(layer)
    assert sorted(name for name, m in members.items() if not m.isdir()) == [
        ".venv/bin/python",
        ".venv/bin/python3",
        ".venv/bin/python3.11",
        ".venv/lib/python3.11/site-packages/esb_service_sources.pth",
        ".venv/pyvenv.cfg",
    ]
    with tarfile.open(layer) as archive:
        pth = archive.extractfile(".venv/lib/python3.11/site-packages/esb_service_sources.pth")
        assert pth is not None and pth.read() == b"/app/src\n/app/tools\n"
    assert members[".venv/bin/python"].linkname == "/usr/bin/python3.11"


def test_export_lock_reports_a_stale_lock_without_a_traceback(
    uv_wheel: Path, make_project: MakeProject, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = make_project("stale-cli", ["six==1.17.0"])
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text().replace('"six==1.17.0"', '"six==1.16.0"')
    )
    argv = [
        "export-lock",
        f"--project={project}",
        f"--uv={uv_wheel}",
        *TARGET_ARGS,
        f"--out={tmp_path / 'x.json'}",
    ]

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
        f"--uv={not_a_wheel}",
        f"--out-blob={tmp_path / 'l'}",
        f"--out-descriptor={tmp_path / 'd'}",
    ]

    assert run_command(argv) == 1
    assert "is not a wheel" in capsys.readouterr().err


def test_uv_sees_the_resolution_time_and_no_other_variable_of_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_EXCLUDE_NEWER", "2026-11-01T00:00:00Z")
    monkeypatch.setenv("UV_INDEX_URL", "https://elsewhere.example/simple")
    uv = uv_from(str(tmp_path / "uv"), None, tmp_path)
    assert uv.network_env["UV_EXCLUDE_NEWER"] == "2026-11-01T00:00:00Z"
    assert "UV_INDEX_URL" not in uv.network_env
