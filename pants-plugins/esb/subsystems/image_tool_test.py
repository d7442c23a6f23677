from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Sequence

import pytest
from pants.backend.python.util_rules import pex_requirements
from pants.backend.python.util_rules.interpreter_constraints import InterpreterConstraints
from pants.backend.python.util_rules.pex import PexRequest, Script, VenvPex, VenvPexProcess
from pants.backend.python.util_rules.pex_requirements import EntireLockfile
from pants.core.subsystems import python_bootstrap
from pants.engine.fs import Digest, DigestContents, DigestSubset, RemovePrefix
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import Process
from pants.engine.rules import QueryRule
from pants.option.global_options import GlobalOptions
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import MockGet, RuleRunner, run_rule_with_mocks
from pants.util.frozendict import FrozenDict

from esb.subsystems import image_tool, tool_interpreter
from esb.subsystems.image_tool import (
    ImageTool,
    ImageToolPexRequest,
    ImageToolRequest,
    ImageToolResolveError,
    build_image_tool,
    image_tool_process,
)
from esb_contract import commands, flags


@pytest.fixture(autouse=True)
def _contract_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # `imagetool` is of another resolve than the backend's tests: pack only the contract.
    monkeypatch.setattr(image_tool, "IMAGE_TOOL_PACKAGES", ("esb_contract",))


def _rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *image_tool.rules(),
            *tool_interpreter.rules(),
            *python_bootstrap.rules(),
            *pex_requirements.rules(),
            QueryRule(ImageToolPexRequest, []),
            QueryRule(Digest, [DigestSubset]),
            QueryRule(Digest, [RemovePrefix]),
            QueryRule(DigestContents, [Digest]),
        ]
    )


def _search_path(
    rule_runner: RuleRunner, interpreters: list[str], options: Sequence[str] = ()
) -> list[str]:
    """Sets `options` and a search path that holds only `interpreters` (file names), and returns
    the interpreters' real paths."""
    directory = Path(rule_runner.build_root, "interpreters")
    directory.mkdir()
    for name in interpreters:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    rule_runner.set_options([f"--python-bootstrap-search-path=['{directory}']", *options])
    return [os.path.realpath(directory / name) for name in interpreters]


def test_default_installs_the_lockfile_shipped_with_the_backend_on_its_interpreter() -> None:
    rule_runner = _rule_runner()
    (python,) = _search_path(rule_runner, ["python3.11"])
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, EntireLockfile)
    assert request.requirements.lockfile.url == "resource://esb.subsystems/esb-image-tool.lock"
    # The one interpreter of the constraints the lockfile was generated for (its header's
    # `CPython==3.11.*`), found by name: the request names it, so no constraints may go with it.
    assert request.python is not None and request.python.path == python
    assert request.interpreter_constraints == InterpreterConstraints()
    assert request.requirements.lockfile.resolve_name == ""


def test_without_an_interpreter_found_by_name_pants_discovers_one_for_the_constraints() -> None:
    rule_runner = _rule_runner()
    # Two of the minor: only running them tells which one pex would pick.
    _search_path(rule_runner, ["python3.11", "python3"])
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, EntireLockfile)
    assert request.python is None
    assert request.interpreter_constraints == InterpreterConstraints(["CPython==3.11.*"])
    assert request.requirements.lockfile.resolve_name == "esb-image-tool"


_PINNED = [
    "--esb-image-tool-resolve=pinned",
    "--python-enable-resolves",
    "--python-resolves={'pinned': 'pinned.lock'}",
    "--python-resolves-to-interpreter-constraints={'pinned': ['CPython==3.12.*']}",
]


def test_resolve_option_installs_that_resolve_on_its_interpreter() -> None:
    rule_runner = _rule_runner()
    (_, python) = _search_path(rule_runner, ["python3.11", "python3.12"], _PINNED)
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, EntireLockfile)
    assert request.requirements.lockfile.url == "pinned.lock"
    assert request.python is not None and request.python.path == python
    assert request.interpreter_constraints == InterpreterConstraints()


def test_a_resolve_with_options_of_its_own_keeps_its_name_and_its_constraints() -> None:
    rule_runner = _rule_runner()
    # Options per resolve reach pex through the lockfile's resolve name, which must then stay.
    only_binary = "--python-resolves-to-only-binary={'pinned': ['isal']}"
    _search_path(rule_runner, ["python3.12"], [*_PINNED, only_binary])
    request = rule_runner.request(ImageToolPexRequest, []).pex_request

    assert isinstance(request.requirements, EntireLockfile)
    assert request.requirements.lockfile.resolve_name == "pinned"
    assert request.python is None
    assert request.interpreter_constraints == InterpreterConstraints(["CPython==3.12.*"])


def test_a_resolve_that_python_does_not_have_is_named_with_the_fix() -> None:
    rule_runner = _rule_runner()
    rule_runner.set_options(["--esb-image-tool-resolve=pinnd", *_PINNED[1:3]])

    with pytest.raises(ExecutionError) as error:
        rule_runner.request(ImageToolPexRequest, [])

    assert isinstance(error.value.wrapped_exceptions[0], ImageToolResolveError)
    message = str(error.value.wrapped_exceptions[0])
    assert "`[esb-image-tool].resolve`" in message and "`pinnd`" in message
    assert "(it has: pinned)" in message and "Add it there" in message


ASSEMBLE_ARGV = (
    commands.ASSEMBLE,
    flags.SPEC,
    "spec.json",
    flags.OUT_LAYOUT,
    "image.oci",
    flags.OUT_METADATA,
    "image.json",
)


def _venv_pex(digest: Digest) -> VenvPex:
    return VenvPex(
        digest=digest,
        append_only_caches=None,
        pex_filename="imagetool.pex",
        pex=Script(PurePath("imagetool.pex_pex_shim.sh")),
        python=Script(PurePath("imagetool.pex_bin_python_shim.sh")),
        bin=FrozenDict(),
        venv_rel_dir="venvs/x",
    )


def test_the_tools_packed_pex_is_split_from_the_scripts_that_run_its_venv() -> None:
    rule_runner = _rule_runner()
    pex = rule_runner.make_snapshot(
        {
            "imagetool.pex_pex_shim.sh": "exec venv/pex",
            "imagetool.pex_bin_python_shim.sh": "exec venv/python",
            "imagetool.pex/PEX-INFO": "{}",
            "imagetool.pex/.deps/isal.whl": "wheel",
        }
    ).digest
    tool = run_rule_with_mocks(
        build_image_tool,
        rule_args=[
            ImageToolPexRequest(PexRequest(output_filename="imagetool.pex", internal_only=True))
        ],
        mock_gets=[
            MockGet(VenvPex, (PexRequest,), lambda _: _venv_pex(pex)),
            MockGet(Digest, (DigestSubset,), lambda r: rule_runner.request(Digest, [r])),
            MockGet(Digest, (RemovePrefix,), lambda r: rule_runner.request(Digest, [r])),
        ],
    )

    def paths(digest: Digest) -> list[str]:
        return sorted(f.path for f in rule_runner.request(DigestContents, [digest]))

    assert paths(tool.launcher.digest) == [
        "imagetool.pex_bin_python_shim.sh",
        "imagetool.pex_pex_shim.sh",
    ]
    assert paths(tool.packed) == [".deps/isal.whl", "PEX-INFO"]
    assert tool.launcher.pex.argv0 == "./imagetool.pex_pex_shim.sh"


def test_every_run_links_the_packed_pex_and_gets_only_the_scripts_in_its_sandbox() -> None:
    rule_runner = _rule_runner()
    scripts = rule_runner.make_snapshot({"imagetool.pex_pex_shim.sh": "exec venv/pex"}).digest
    packed = rule_runner.make_snapshot({"PEX-INFO": "{}"}).digest
    inputs = rule_runner.make_snapshot({"spec.json": "{}"}).digest
    asked: list[VenvPexProcess] = []

    def venv_pex_process(request: VenvPexProcess) -> Process:
        asked.append(request)
        assert request.input_digest is not None
        return Process(
            argv=(request.venv_pex.pex.argv0, *request.argv),
            description=request.description,
            input_digest=request.input_digest,
        )

    process = run_rule_with_mocks(
        image_tool_process,
        rule_args=[
            ImageToolRequest(argv=ASSEMBLE_ARGV, description="Assemble", input_digest=inputs),
            ImageTool(_venv_pex(scripts), packed),
            create_subsystem(GlobalOptions, ca_certs_path=None),
        ],
        mock_gets=[MockGet(Process, (VenvPexProcess,), venv_pex_process)],
    )

    (request,) = asked
    assert request.venv_pex.digest == scripts
    assert process.argv == ("./imagetool.pex_pex_shim.sh", *ASSEMBLE_ARGV)
    assert process.input_digest == inputs
    assert process.immutable_input_digests == FrozenDict({"imagetool.pex": packed})
    # Pants puts the sandbox's path for `{chroot}`: scratch files go with the sandbox.
    assert request.extra_env == FrozenDict({"TMPDIR": "{chroot}/.tmp"})
