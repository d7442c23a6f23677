from __future__ import annotations

from types import SimpleNamespace

from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessExecutionFailure, ProcessResult
from pants.option.global_options import KeepSandboxes
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.util_rules.layers import (
    DistributionLayerRequest,
    LockedDistribution,
    build_distribution_layer,
)
from esb.util_rules.lock_testutil import UV_WHEEL
from esb.util_rules.platform import BasePlatform
from esb.util_rules.sdists import SdistWheelRequest, sdist_wheel_process
from esb.util_rules.service import (
    ServiceProject,
    distribution_layer_groups,
    export_lock_argv,
    is_distribution_layer_failure,
)
from esb_contract import flags
from esb_contract.commands import read_argv

PLATFORM = BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
SDIST_URL = "https://files.pythonhosted.org/packages/a2/55/x/docopt-0.6.2.tar.gz"
DOCOPT = LockedDistribution("docopt", "docopt==0.6.2 \\\n    --hash=sha256:49b3\n", "", SDIST_URL)


def image_tool_requests(rule, rule_args, runs_process: bool = True) -> list[ImageToolRequest]:
    requests: list[ImageToolRequest] = []

    def process(request: ImageToolRequest) -> Process:
        requests.append(request)
        return Process(argv=("true",), description=request.description)

    run_rule_with_mocks(
        rule,
        rule_args=rule_args,
        mock_gets=[
            MockGet(UvWheel, (UvWheelRequest,), lambda _: UV_WHEEL),
            MockGet(Process, (ImageToolRequest,), process),
            *(
                [
                    MockGet(
                        ProcessResult,
                        (Process,),
                        lambda _: SimpleNamespace(output_digest=EMPTY_DIGEST),
                    )
                ]
                if runs_process
                else []
            ),
        ],
    )
    return requests


def test_the_sdist_build_is_keyed_by_the_locked_sdist_the_constraints_and_the_platform() -> None:
    (request,) = image_tool_requests(
        sdist_wheel_process,
        [SdistWheelRequest(DOCOPT, PLATFORM, EMPTY_DIGEST), Platform.linux_x86_64],
        runs_process=False,
    )
    argv = request.full_argv
    assert argv[0] == "sdist-wheel"
    assert read_argv(argv).value(flags.REQUIREMENT) == DOCOPT.requirement
    assert read_argv(argv).value(flags.SDIST_URL) == SDIST_URL
    assert read_argv(argv).value(flags.BUILD_CONSTRAINTS) == "build-constraints.txt"
    assert read_argv(argv).value(flags.PYTHON_PLATFORM) == PLATFORM.uv_python_platform
    assert flags.CREDENTIALS_DIR not in read_argv(argv).values
    assert request.description == "Build a wheel of docopt==0.6.2 from its sdist"
    assert request.output_directories == ("wheel",)


def test_the_layer_of_a_built_sdist_installs_its_wheel_and_names_it() -> None:
    (request,) = image_tool_requests(
        build_distribution_layer,
        [
            DistributionLayerRequest(
                (DOCOPT,), PLATFORM, EMPTY_DIGEST, "wheel/docopt-0.6.2-py2.py3-none-any.whl"
            ),
            Platform.linux_x86_64,
        ],
    )
    argv = request.full_argv
    assert read_argv(argv).value(flags.WHEEL) == "wheel/docopt-0.6.2-py2.py3-none-any.whl"
    assert flags.REQUIREMENT not in read_argv(argv).values
    assert request.description == "Install docopt==0.6.2 into a layer"


def test_an_sdist_keeps_a_layer_of_its_own_past_the_limit() -> None:
    wheels = tuple(
        LockedDistribution(n, f"{n}==1.0 \\\n    --hash=sha256:00\n") for n in ("a", "c", "e")
    )
    groups = distribution_layer_groups((*wheels, DOCOPT), 2)
    assert (DOCOPT,) in groups
    assert sum(len(g) for g in groups) == 4


def test_a_failed_sdist_build_is_reported_as_a_distribution_failure() -> None:
    failure = ProcessExecutionFailure(
        1,
        b"",
        b"docopt 0.6.2 needs a C compiler",
        "Build a wheel of docopt==0.6.2 from its sdist",
        keep_sandboxes=KeepSandboxes.never,
    )
    assert is_distribution_layer_failure(failure)


def test_the_lock_check_is_given_the_build_constraints() -> None:
    project = ServiceProject(
        Address("services/cli", target_name="cli"),
        EMPTY_DIGEST,
        PLATFORM,
        Address("base", target_name="esb-service-base"),
    )
    argv = (*export_lock_argv(project), *UV_WHEEL.argv)
    assert read_argv(argv).value(flags.BUILD_CONSTRAINTS) == "project/build-constraints.txt"
    assert read_argv(argv).value(flags.RELOCK_COMMAND) == "pants esb-lock services/cli:cli"
