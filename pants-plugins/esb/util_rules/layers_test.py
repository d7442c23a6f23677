from __future__ import annotations

import pytest
from pants.engine.fs import EMPTY_DIGEST, EMPTY_FILE_DIGEST, AddPrefix, Digest
from pants.engine.platform import Platform
from pants.engine.process import (
    Process,
    ProcessExecutionEnvironment,
    ProcessResult,
    ProcessResultMetadata,
)
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.util_rules.layers import (
    BuiltLayer,
    DistributionLayerRequest,
    ProjectLayerRequest,
    build_distribution_layer,
    build_project_layer,
)
from esb.util_rules.lock_testutil import UV_WHEEL
from esb.util_rules.platform import BasePlatform
from esb_contract import flags
from esb_contract.commands import read_argv
from esb_contract.lock_export import LockedDistribution

_RESULT = ProcessResult(
    stdout=b"",
    stdout_digest=EMPTY_FILE_DIGEST,
    stderr=b"",
    stderr_digest=EMPTY_FILE_DIGEST,
    output_digest=EMPTY_DIGEST,
    metadata=ProcessResultMetadata(
        0,
        ProcessExecutionEnvironment(
            environment_name=None,
            platform="linux_x86_64",
            docker_image=None,
            remote_execution=False,
            remote_execution_extra_platform_properties=[],
        ),
        "ran",
        0,
    ),
)
_PLATFORM = BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")


def _distribution_layer(*distributions: LockedDistribution) -> BuiltLayer:
    return run_rule_with_mocks(
        build_distribution_layer,
        rule_args=[DistributionLayerRequest(distributions, _PLATFORM), Platform.linux_x86_64],
        mock_gets=[
            MockGet(UvWheel, (UvWheelRequest,), lambda _: UV_WHEEL),
            MockGet(
                Process,
                (ImageToolRequest,),
                lambda request: Process(request.full_argv, description=request.description),
            ),
            MockGet(ProcessResult, (Process,), lambda _: _RESULT),
        ],
    )


def test_a_distribution_layers_history_names_its_distribution_and_version() -> None:
    layer = _distribution_layer(
        LockedDistribution("fastapi", "fastapi==0.115.6 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    )
    assert layer.created_by == "esb: distribution layer (fastapi 0.115.6)"


def test_a_shared_layer_names_every_distribution_in_it() -> None:
    layer = _distribution_layer(
        LockedDistribution("a", "a==1.0 ; python_version >= '3.9' \\\n    --hash=sha256:00\n"),
        LockedDistribution("b", "b==2.0\n"),
    )
    assert layer.created_by == "esb: distribution layer (a 1.0, b 2.0)"


def test_other_layers_are_named_by_kind() -> None:
    assert BuiltLayer("uv", EMPTY_DIGEST).created_by == "esb: uv layer"


# Any digest other than the empty one stands for a project's files.
_PROJECT = Digest("a" * 64, 1)


def run_project_layer(constraints: bool) -> ImageToolRequest:
    requests = []

    def process(request: ImageToolRequest) -> Process:
        requests.append(request)
        return Process(request.full_argv, description=request.description)

    layer = run_rule_with_mocks(
        build_project_layer,
        rule_args=[
            ProjectLayerRequest(
                _PROJECT,
                _PLATFORM,
                "services/x:x",
                "services/x",
                "Build the project layer of services/x:x",
                has_build_constraints=constraints,
            ),
            Platform.linux_x86_64,
        ],
        mock_gets=[
            MockGet(Digest, (AddPrefix,), lambda _: EMPTY_DIGEST),
            MockGet(UvWheel, (UvWheelRequest,), lambda _: UV_WHEEL),
            MockGet(Process, (ImageToolRequest,), process),
            MockGet(ProcessResult, (Process,), lambda _: _RESULT),
        ],
    )
    assert isinstance(layer, BuiltLayer) and layer.created_by == "esb: project layer"
    (request,) = requests
    return request


@pytest.mark.parametrize("constraints", [False, True])
def test_a_package_is_built_with_uv_and_its_constraints(constraints: bool) -> None:
    request = run_project_layer(constraints)
    argv = list(request.full_argv)
    assert argv[:1] == ["project-layer"]
    assert read_argv(argv).value(flags.SERVICE) == "services/x:x"
    assert read_argv(argv).value(flags.DISPLAY_DIR) == "services/x"
    assert read_argv(argv).value(flags.PROJECT) == "project"
    assert read_argv(argv).value(flags.UV) == UV_WHEEL.pin.to_argument()
    if constraints:
        assert read_argv(argv).value(flags.BUILD_CONSTRAINTS) == "project/build-constraints.txt"
    else:
        assert flags.BUILD_CONSTRAINTS not in read_argv(argv).values
    assert request.needs_network_trust
