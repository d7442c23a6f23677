from __future__ import annotations

from typing import Any

import pytest
from pants.testutil.option_util import create_subsystem

from esb.goals.run import EsbRunOptionError, EsbRunSubsystem, run_image_args
from esb_contract import commands, flags
from esb_contract.commands import Invocation, read_argv


def _subsystem(**options: Any) -> EsbRunSubsystem:
    defaults: dict[str, Any] = dict(
        engine="docker",
        network=None,
        publish_ports=True,
        load_only=False,
        env=[],
        publish=[],
        platform=None,
        timeout=600,
    )
    return create_subsystem(EsbRunSubsystem, **{**defaults, **options})


def read(args: tuple[str, ...]) -> Invocation:
    """The tool's reading of `args` (after the tool's own path)."""
    assert args[0] == "{chroot}/pex"
    return read_argv(args[1:])


def test_run_args_publish_ports_and_pick_network() -> None:
    subsystem = _subsystem(network="none")
    invocation = read(run_image_args("pex", ("8080/tcp", "9000/udp"), subsystem))
    assert invocation.name == commands.RUN_IMAGE
    assert invocation.value(flags.LAYOUT) == "{chroot}/image.oci"
    assert invocation.value(flags.METADATA) == "{chroot}/image.image.json"
    assert invocation.value(flags.NETWORK) == "none"
    assert invocation.get(flags.PUBLISH) == ("8080:8080/tcp", "9000:9000/udp")
    assert invocation.value(flags.TIMEOUT) == "600"
    assert invocation.value(flags.ENGINE) == "docker"
    assert flags.LOAD_ONLY not in invocation.values


def test_the_engine_reaches_the_tool() -> None:
    invocation = read(run_image_args("pex", (), _subsystem(engine="podman")))
    assert invocation.value(flags.ENGINE) == "podman"


def test_what_pants_run_appends_is_the_command_whatever_it_looks_like() -> None:
    args = run_image_args("pex", (), _subsystem())
    assert read((*args, "--help", "-x")).rest == ("--help", "-x")


def test_the_platform_to_run_reaches_the_tool() -> None:
    invocation = read(run_image_args("pex", (), _subsystem(platform="linux/arm64")))
    assert invocation.value(flags.PLATFORM) == "linux/arm64"
    assert flags.PLATFORM not in read(run_image_args("pex", (), _subsystem())).values


def test_load_only_without_ports() -> None:
    invocation = read(
        run_image_args("pex", ("8080/tcp",), _subsystem(publish_ports=False, load_only=True))
    )
    assert flags.LOAD_ONLY in invocation.values
    assert invocation.get(flags.PUBLISH) == ()


def test_local_names_reach_the_tool() -> None:
    names = ("local/esb/api:latest", "local/esb/api:1.0")
    invocation = read(run_image_args("pex", (), _subsystem(), names))
    assert invocation.get(flags.LOCAL_NAME) == names


def test_env_publish_and_timeout_options_reach_the_tool() -> None:
    subsystem = _subsystem(
        publish_ports=False,
        env=["LOG_LEVEL=debug", "API_TOKEN", "EMPTY=", "ARGS=--x a=b"],
        publish=["9090:8080/tcp", "127.0.0.1:9091:8081", "9000"],
        timeout=1800,
    )
    invocation = read(run_image_args("pex", ("8080/tcp",), subsystem))
    assert invocation.get(flags.PUBLISH) == ("9090:8080/tcp", "127.0.0.1:9091:8081", "9000")
    assert invocation.get(flags.ENV) == ("LOG_LEVEL=debug", "API_TOKEN", "EMPTY=", "ARGS=--x a=b")
    assert invocation.value(flags.TIMEOUT) == "1800"


@pytest.mark.parametrize(
    "options, message",
    [
        pytest.param(
            {"publish": ["8080", "http:80"]},
            "The `[esb-run].publish` option has 'http:80'.",
            id="publish",
        ),
        pytest.param(
            {"env": ["=x", "OK=1", "1X"]},
            "The `[esb-run].env` option has '=x', '1X'.",
            id="env",
        ),
        pytest.param({"timeout": 0}, "The `[esb-run].timeout` option is 0", id="timeout"),
        pytest.param(
            {"platform": "arm64"},
            "The `[esb-run].platform` option, 'arm64', is not a platform",
            id="platform",
        ),
        pytest.param(
            {"engine": "containerd"},
            "The `[esb-run].engine` option, 'containerd', is not an engine `pants run` talks to.",
            id="engine",
        ),
    ],
)
def test_a_bad_option_is_named_with_the_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(EsbRunOptionError) as error:
        run_image_args("pex", (), _subsystem(**options))
    assert str(error.value).startswith(message)
    assert "\n\nFix: " in str(error.value)
