from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imagetool.app_layer import stage_app_files
from imagetool.venv.target_python import TargetPython

DEBIAN_12 = TargetPython("3.11.2", "x86_64-manylinux_2_36", "/usr/bin/python3.11")
# What the backend passes from Pants' `[GLOBAL].build_patterns` (its default).
BUILD_FILE_PATTERNS = ("BUILD", "BUILD.*")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    files = tmp_path / "files"
    (files / "app" / "data").mkdir(parents=True)
    (files / "app" / "main.py").write_text("print('hello')\n")
    (files / "app" / "broken.py").write_text("def broken(:\n")
    (files / "app" / "data" / "banner.txt").write_text("hello\n")
    (files / "app" / "BUILD").write_text("python_sources()\n")
    (files / "BUILD.pants").write_text("esb_service_image()\n")
    (files / "app" / "main_link.py").symlink_to("main.py")
    return files


def test_app_files_ship_without_build_files_and_with_unchecked_hash_bytecode(
    files: Path, tmp_path: Path
) -> None:
    app = stage_app_files(
        files, tmp_path / "staged", DEBIAN_12, build_file_patterns=BUILD_FILE_PATTERNS
    )

    names = sorted(p.relative_to(app.root).as_posix() for p in app.root.rglob("*"))
    assert names == [
        "app",
        "app/__pycache__",
        "app/__pycache__/main.cpython-311.pyc",
        "app/broken.py",
        "app/data",
        "app/data/banner.txt",
        "app/main.py",
        "app/main_link.py",
    ]
    assert (app.root / "app" / "main_link.py").readlink() == Path("main.py")
    pyc = (app.root / "app/__pycache__/main.cpython-311.pyc").read_bytes()
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    # Flags: hash-based (bit 0), not checked against the source (bit 1 clear).
    assert int.from_bytes(pyc[4:8], "little") == 0b01
    assert b"/app/app/main.py" in pyc and str(files).encode() not in pyc
    assert app.notes() == ["/app/app/broken.py does not compile, and ships without bytecode."]


def test_app_files_of_another_python_ship_without_bytecode(files: Path, tmp_path: Path) -> None:
    app = stage_app_files(
        files,
        tmp_path / "staged",
        TargetPython("3.12.8", "x86_64-manylinux_2_36", "/usr/local/bin/python3.12"),
        build_file_patterns=BUILD_FILE_PATTERNS,
    )
    assert app.bytecode_skipped and "3.12" in app.bytecode_skipped
    assert not list(app.root.rglob("*.pyc"))
    (note,) = app.notes()
    assert note.startswith("/app ships without bytecode:") and "3.12" in note
