from __future__ import annotations

from typing import Optional

import pytest

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.util_rules.layers import BuiltLayer, ServiceLayerRequest, build_service_layer
from esb.util_rules.platform import BasePlatform
from pants.engine.fs import EMPTY_DIGEST, EMPTY_FILE_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.platform import Platform
from pants.engine.process import (
    Process,
    ProcessExecutionEnvironment,
    ProcessResult,
    ProcessResultMetadata,
)
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

PLATFORM = BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
# Any digest other than the empty one stands for a project's files.
PROJECT = Digest("a" * 64, 1)
RESULT = ProcessResult(
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


def run_service_layer(project: Digest, constraints: Optional[str]) -> ImageToolRequest:
    requests = []

    def process(request: ImageToolRequest) -> Process:
        requests.append(request)
        return Process(request.argv, description=request.description)

    layer = run_rule_with_mocks(
        build_service_layer,
        rule_args=[
            ServiceLayerRequest(
                EMPTY_DIGEST,
                project,
                PLATFORM,
                "services/x:x",
                "services/x",
                ("BUILD", "BUILD.*"),
                "Build the source layer of services/x:x",
                build_constraints=constraints,
            ),
            Platform.linux_x86_64,
        ],
        mock_gets=[
            MockGet(Digest, (AddPrefix,), lambda _: EMPTY_DIGEST),
            MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
            MockGet(UvWheel, (UvWheelRequest,), lambda _: UvWheel(EMPTY_DIGEST, "uv.whl")),
            MockGet(Process, (ImageToolRequest,), process),
            MockGet(ProcessResult, (Process,), lambda _: RESULT),
        ],
    )
    assert isinstance(layer, BuiltLayer) and layer.name == "app"
    (request,) = requests
    return request


def test_a_service_that_is_no_package_ships_its_files_only_and_needs_no_index() -> None:
    request = run_service_layer(EMPTY_DIGEST, None)
    argv = list(request.argv)
    assert argv[:1] == ["service-layer"]
    assert "--project" not in argv and "--uv" not in argv
    assert argv[argv.index("--app") + 1] == "app"
    assert argv[argv.index("--service") + 1] == "services/x:x"
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--build-file-pattern"] == [
        "BUILD",
        "BUILD.*",
    ]
    assert not request.needs_network_trust


@pytest.mark.parametrize("constraints", [None, "build-constraints.txt"])
def test_a_package_is_built_with_uv_and_its_constraints(constraints: Optional[str]) -> None:
    request = run_service_layer(PROJECT, constraints)
    argv = list(request.argv)
    assert argv[argv.index("--project") + 1] == "project"
    assert argv[argv.index("--uv") + 1] == "uv.whl"
    if constraints:
        assert argv[argv.index("--build-constraints") + 1] == "project/build-constraints.txt"
    else:
        assert "--build-constraints" not in argv
    assert request.needs_network_trust
