from __future__ import annotations

import pytest

from esb_contract.steps import ASSEMBLE, BUILD, INSTALL, describe, is_image_step


def test_the_benchmarks_recognise_every_step_the_backend_describes() -> None:
    for step in (BUILD, INSTALL, ASSEMBLE):
        assert is_image_step(describe(step, "something of services/api:api"))


def test_other_processes_are_not_image_steps() -> None:
    assert not is_image_step("Check the uv.lock of services/api:api")
    assert not is_image_step("Building esb-image-tool.pex")
    # A step word must stand alone, not open a longer word.
    assert not is_image_step("Installation of the tool")


def test_an_unknown_step_is_refused() -> None:
    with pytest.raises(ValueError, match="'Compile' is not an image step"):
        describe("Compile", "bytecode")
