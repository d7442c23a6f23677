"""The backend imports and registers on the running Pants: an API that moved fails here."""

from __future__ import annotations

import importlib
import pkgutil

import esb
from esb import register


def backend_modules() -> list[str]:
    return sorted(
        module.name
        for module in pkgutil.walk_packages(esb.__path__, prefix="esb.")
        if not module.name.endswith(("_test", "_testutil"))
    )


def test_every_module_imports() -> None:
    modules = backend_modules()
    # The sandbox holds every source of the backend (see BUILD): a short list means a lost file.
    assert {"esb.compat", "esb.register", "esb.goals.run", "esb.subsystems.image_tool"} <= set(
        modules
    )
    for name in modules:
        importlib.import_module(name)


def test_register_returns_rules_and_target_types() -> None:
    assert list(register.rules())
    assert list(register.target_types())
