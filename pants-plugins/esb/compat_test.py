from __future__ import annotations

from importlib import resources
from pathlib import PurePath
from types import SimpleNamespace
from typing import Mapping

from pants.backend.python.util_rules.pex_environment import CompletePexEnvironment
from pants.util.frozendict import FrozenDict

from esb.compat import Traversable, pex_environment_dict

SEARCH_PATH = {"PEX_PYTHON_PATH": "/usr/bin"}


class EnvironmentTakingPython:
    """The signature of Pants 2.17: the interpreter chosen, if any."""

    def environment_dict(self, *, python: object | None = None) -> Mapping[str, str]:
        return SEARCH_PATH if python is None else {"PEX_PYTHON": str(python)}


class EnvironmentTakingPythonConfigured:
    """The signature of the releases that say whether an interpreter was chosen."""

    def environment_dict(self, *, python_configured: bool) -> Mapping[str, str]:
        return {} if python_configured else SEARCH_PATH


def test_pex_environment_dict_with_the_python_keyword() -> None:
    assert pex_environment_dict(EnvironmentTakingPython()) == SEARCH_PATH


def test_pex_environment_dict_with_the_python_configured_keyword() -> None:
    assert pex_environment_dict(EnvironmentTakingPythonConfigured()) == SEARCH_PATH


def test_pex_environment_dict_with_the_running_pants() -> None:
    # Only the parts of the PEX environment that `environment_dict` reads.
    pex_environment = SimpleNamespace(
        path=("/bin",), interpreter_search_paths=("/usr/bin",), subprocess_environment_dict={}
    )
    environment = CompletePexEnvironment(
        _pex_environment=pex_environment,  # type: ignore[arg-type]
        pex_root=PurePath("/cache/pex_root"),
        _working_directory=None,
        append_only_caches=FrozenDict(),
    )
    assert pex_environment_dict(environment)["PEX_PYTHON_PATH"] == "/usr/bin"


def test_traversable_is_what_resources_files_returns() -> None:
    assert isinstance(resources.files("esb"), Traversable)
