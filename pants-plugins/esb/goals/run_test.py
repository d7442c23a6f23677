from __future__ import annotations

from typing import Any

import pytest
from pants.testutil.option_util import create_subsystem

from esb.goals.run import EsbRunOptionError, EsbRunSubsystem, run_image_args


def _subsystem(**options: Any) -> EsbRunSubsystem:
    defaults: dict[str, Any] = dict(
        network=None, publish_ports=True, load_only=False, env=[], publish=[], timeout=600
    )
    return create_subsystem(EsbRunSubsystem, **{**defaults, **options})


def test_run_args_publish_ports_and_pick_network() -> None:
    subsystem = _subsystem(network="none")
    assert run_image_args("tool/pex", ("8080/tcp", "9000/udp"), subsystem) == (
        "{chroot}/tool/pex",
        "run-image",
        "--layout",
        "{chroot}/image.oci",
        "--metadata",
        "{chroot}/image.image.json",
        "--network",
        "none",
        "--publish",
        "8080:8080/tcp",
        "--publish",
        "9000:9000/udp",
        "--timeout",
        "600",
        # What `pants run <target> -- <args>` appends is the command, whatever it looks like.
        "--",
    )


def test_load_only_without_ports() -> None:
    args = run_image_args("pex", ("8080/tcp",), _subsystem(publish_ports=False, load_only=True))
    assert "--load-only" in args
    assert not any(arg.startswith("--publish") for arg in args)


def test_env_publish_and_timeout_options_reach_the_tool() -> None:
    subsystem = _subsystem(
        publish_ports=False,
        env=["LOG_LEVEL=debug", "API_TOKEN", "EMPTY=", "ARGS=--x a=b"],
        publish=["9090:8080/tcp", "127.0.0.1:9091:8081", "9000"],
        timeout=1800,
    )
    assert run_image_args("pex", ("8080/tcp",), subsystem)[6:] == (
        "--publish=9090:8080/tcp",
        "--publish=127.0.0.1:9091:8081",
        "--publish=9000",
        "--env=LOG_LEVEL=debug",
        "--env=API_TOKEN",
        "--env=EMPTY=",
        "--env=ARGS=--x a=b",
        "--timeout",
        "1800",
        "--",
    )


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
    ],
)
def test_a_bad_option_is_named_with_the_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(EsbRunOptionError) as error:
        run_image_args("pex", (), _subsystem(**options))
    assert str(error.value).startswith(message)
    assert "\n\nFix: " in str(error.value)
