from __future__ import annotations

import pytest
from pants.backend.python.util_rules import pex_requirements
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex_requirements import (
    EntireLockfile,
    PexRequirements,
    Resolve,
)
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

from esb.subsystems import image_tool
from esb.subsystems.image_tool import ImageToolPexRequest


@pytest.fixture(autouse=True)
def _contract_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # `imagetool` is of another resolve than the backend's tests: pack only the contract.
    monkeypatch.setattr(image_tool, "IMAGE_TOOL_PACKAGES", ("esb_contract",))


def _rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *image_tool.rules(),
            *pex_requirements.rules(),
            QueryRule(ImageToolPexRequest, []),
        ]
    )


def test_default_installs_the_lockfile_shipped_with_the_backend() -> None:
    rule_runner = _rule_runner()
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, EntireLockfile)
    assert request.requirements.lockfile.url == "resource://esb.subsystems/esb-image-tool.lock"
    # The constraints the lockfile was generated for, read from its header.
    assert request.interpreter_constraints == InterpreterConstraints(["CPython==3.11.*"])


def test_resolve_option_installs_that_resolve_on_its_constraints() -> None:
    rule_runner = _rule_runner()
    rule_runner.set_options(
        [
            "--esb-image-tool-resolve=pinned",
            "--python-enable-resolves",
            "--python-resolves={'pinned': 'pinned.lock'}",
            "--python-resolves-to-interpreter-constraints={'pinned': ['CPython==3.12.*']}",
        ]
    )
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, PexRequirements)
    assert request.requirements.from_superset == Resolve("pinned", use_entire_lockfile=True)
    assert request.interpreter_constraints == InterpreterConstraints(["CPython==3.12.*"])
