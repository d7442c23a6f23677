"""Shims over the Python and Pants APIs that differ between the versions the backend runs on.

Pants 2.17 to 2.24 run on CPython 3.9, later releases on newer interpreters; between them, a few
APIs the backend uses moved or were renamed. Each shim here picks the form that exists, so the
rest of the backend is written once. docs/pants-versions.md lists the APIs and their changes.
"""

from __future__ import annotations

import inspect
import sys
from typing import Callable, Mapping, Protocol

# `importlib.abc.Traversable` is deprecated from Python 3.12 and gone in 3.14; its home since
# 3.11 is `importlib.resources.abc`.
if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable as Traversable
else:
    from importlib.abc import Traversable as Traversable


class _PexEnvironment(Protocol):
    """Pants' `CompletePexEnvironment`, as far as `pex_environment_dict` uses it."""

    @property
    def environment_dict(self) -> Callable[..., Mapping[str, str]]: ...


def pex_environment_dict(environment: _PexEnvironment) -> Mapping[str, str]:
    """The environment of a PEX run that finds its interpreter on the interpreter search path.

    Pants 2.17 spells this `environment_dict(python=None)` (the interpreter, if one was chosen);
    other releases take `environment_dict(python_configured=False)` (whether one was chosen).
    """
    if "python_configured" in inspect.signature(environment.environment_dict).parameters:
        return environment.environment_dict(python_configured=False)
    return environment.environment_dict(python=None)
