from __future__ import annotations

from typing import Iterator

import pytest
from pants.backend.python.macros import python_requirements
from pants.backend.python.pip_requirement import PipRequirement

from esb.pyproject_errors import InvalidPyprojectError, install, reporting

CONFLICTED = b"""[project]
name = "esb-api"
<<<<<<< HEAD
dependencies = ["six==1.17.0"]
=======
dependencies = ["six==1.16.0"]
>>>>>>> feature
"""


def test_conflict_markers_name_the_file_the_target_the_line_and_the_fix() -> None:
    parse = reporting(python_requirements.parse_pyproject_callback)

    with pytest.raises(InvalidPyprojectError) as error:
        parse(CONFLICTED, "services/api/pyproject.toml")

    message = str(error.value)
    assert message.startswith(
        "services/api/pyproject.toml has unresolved merge-conflict markers (`<<<<<<<` at line 3)"
    )
    assert "the `python_requirements` target of services/api/BUILD" in message
    assert "Fix: resolve the conflict" in message
    assert "`pants esb-lock services/api::`" in message


def test_other_toml_errors_name_the_file_and_the_parser_message() -> None:
    parse = reporting(python_requirements.parse_pyproject_callback)

    with pytest.raises(InvalidPyprojectError, match=r"services/w/pyproject.toml is not valid TOML"):
        parse(b"[project\n", "services/w/pyproject.toml")


def test_a_valid_file_parses_as_before() -> None:
    parse = reporting(python_requirements.parse_pyproject_callback)
    content = b'[project]\ndependencies = ["six==1.17.0"]\n'

    assert [str(r) for r in parse(content, "p/pyproject.toml")] == ["six==1.17.0"]


def test_arguments_after_the_path_reach_pants_callback() -> None:
    calls = []

    def callback(file_contents: bytes, file_path: str, overrides: dict) -> Iterator[PipRequirement]:
        calls.append((file_path, overrides))
        return iter(())

    overrides: dict = {}
    assert list(reporting(callback)(b"", "p/pyproject.toml", overrides)) == []
    assert calls == [("p/pyproject.toml", overrides)]


def test_install_wraps_pants_callback_once() -> None:
    original = python_requirements.parse_pyproject_callback
    try:
        install()
        install()
        installed = python_requirements.parse_pyproject_callback
        assert installed.wrapped is original  # type: ignore[attr-defined]
    finally:
        python_requirements.parse_pyproject_callback = original
