from __future__ import annotations

import os
from pathlib import Path

import pytest
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints

from esb.subsystems.tool_interpreter import find_by_name, single_cpython_minor

UNIVERSE = ("3.8", "3.9", "3.10", "3.11", "3.12")


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def test_the_one_interpreter_of_the_minor_is_found_through_its_links(tmp_path: Path) -> None:
    # pyenv's layout: `python` and `python3` link to the versioned file, beside another minor.
    real = _executable(tmp_path / "3.11.9/bin/python3.11")
    _link(tmp_path / "3.11.9/bin/python3", "python3.11")
    _link(tmp_path / "3.11.9/bin/python", "python3.11")
    _executable(tmp_path / "3.9.18/bin/python3.9")
    _link(tmp_path / "3.9.18/bin/python3", "python3.9")
    paths = [str(tmp_path / "3.9.18/bin"), str(tmp_path / "3.11.9/bin")]

    assert find_by_name(paths, 3, 11) == os.path.realpath(real)
    assert find_by_name(paths, 3, 9) == os.path.realpath(tmp_path / "3.9.18/bin/python3.9")
    assert find_by_name(paths, 3, 12) is None


def test_links_from_several_directories_to_one_file_are_one_interpreter(tmp_path: Path) -> None:
    real = _executable(tmp_path / "usr/bin/python3.11")
    _link(tmp_path / "venv/bin/python", str(real))

    found = find_by_name([str(tmp_path / "venv/bin"), str(tmp_path / "usr/bin")], 3, 11)

    assert found == os.path.realpath(real)


def test_two_files_of_the_minor_are_left_to_discovery(tmp_path: Path) -> None:
    # pex would pick the newer patch release, which only running them can tell.
    _executable(tmp_path / "a/python3.11")
    _executable(tmp_path / "b/python3.11")

    assert find_by_name([str(tmp_path / "a"), str(tmp_path / "b")], 3, 11) is None


@pytest.mark.parametrize(
    "candidates",
    [{"python3": None}, {"python": None}, {"python-custom": None, "python3": "python-custom"}],
)
def test_a_candidate_whose_real_file_is_unversioned_is_left_to_discovery(
    tmp_path: Path, candidates: dict[str, str | None]
) -> None:
    _executable(tmp_path / "a/python3.11")
    for name, target in candidates.items():
        if target:
            _link(tmp_path / "b" / name, target)
        else:
            _executable(tmp_path / "b" / name)

    assert find_by_name([str(tmp_path / "a"), str(tmp_path / "b")], 3, 11) is None


def test_what_pex_would_not_consider_is_ignored(tmp_path: Path) -> None:
    real = _executable(tmp_path / "bin/python3.11")
    # Not executable, a broken link, names pex does not look for, PyPy, a missing directory.
    (tmp_path / "bin/python3.12").write_text("")
    _link(tmp_path / "bin/python3.10", "nowhere")
    _executable(tmp_path / "bin/python3.11-config")
    _executable(tmp_path / "bin/python3.11d")
    _executable(tmp_path / "bin/pypy3.11")
    _link(tmp_path / "bin/pypy3", "pypy3.11")
    paths = [str(tmp_path / "missing"), str(tmp_path / "bin")]

    assert find_by_name(paths, 3, 11) == os.path.realpath(real)
    assert find_by_name(paths, 3, 12) is None


@pytest.mark.parametrize(
    "constraints, expected",
    [
        (["CPython==3.11.*"], (3, 11)),
        (["==3.11.*"], (3, 11)),
        (["CPython>=3.11,<3.12"], (3, 11)),
        (["CPython==3.11.*", "CPython==3.11.*"], (3, 11)),
        # More than one minor, part of one, another implementation, none at all.
        (["CPython>=3.10,<3.12"], None),
        (["CPython==3.9.*", "CPython==3.11.*"], None),
        (["CPython>=3.11.4,<3.12"], None),
        (["CPython==3.11.*,!=3.11.5"], None),
        (["PyPy==3.11.*"], None),
        ([], None),
    ],
)
def test_only_constraints_that_allow_one_whole_cpython_minor_are_found_by_name(
    constraints: list[str], expected: tuple[int, int] | None
) -> None:
    assert single_cpython_minor(InterpreterConstraints(constraints), UNIVERSE) == expected
