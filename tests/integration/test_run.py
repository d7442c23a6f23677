"""`pants run` of an image: variables and arguments reach the container, its exit status is
`pants run`'s, and every failure is one line naming the engine and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest
from docker import DockerClient

from integration.checkouts import Checkout

WORKER = "services/worker:worker"
WORKER_IMAGE = "esb/worker:latest"
# `docker run`'s status for a container that could not be loaded or started.
ENGINE_FAILURE_STATUS = 125
PRINT_AND_EXIT = (
    "import os, sys; "
    "print(os.environ['GREETING'], os.environ['FROM_PANTS'], sys.argv[1:]); "
    "sys.exit(7)"
)


def test_env_and_arguments_reach_the_container_and_its_status_is_the_runs(
    session_checkout: Checkout, docker_client: DockerClient
) -> None:
    # Not in the engine, so that `run` loads it, reporting the load.
    try:
        docker_client.images.remove(docker_client.images.get(WORKER_IMAGE).id, force=True)
    except docker.errors.ImageNotFound:
        pass
    run = session_checkout.pants(
        "run",
        "--esb-run-network=none",
        "--esb-run-env=['GREETING=hello world', 'FROM_PANTS=a=b']",
        WORKER,
        "--",
        "python",
        "-c",
        PRINT_AND_EXIT,
        # Arguments that look like the image tool's own options are the command's too.
        "--timeout",
        "-x",
        passed_env=["DOCKER_HOST"],
    )
    assert run.returncode == 7, run.report()
    assert "hello world a=b ['--timeout', '-x']" in run.stdout.splitlines(), run.stdout
    assert f"Loading {WORKER_IMAGE} (" in run.stderr, run.report()
    assert f"MB) into the engine at DOCKER_HOST={os.environ['DOCKER_HOST']}" in run.stderr
    assert "Traceback" not in run.stderr, run.report()


def test_a_variable_named_alone_comes_from_the_environment_of_pants(
    session_checkout: Checkout, docker_client: DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESB_RUN_TEST_VALUE", "from-pants")
    run = session_checkout.pants(
        "run",
        "--esb-run-network=none",
        "--esb-run-env=['ESB_RUN_TEST_VALUE', 'ESB_RUN_TEST_UNSET']",
        WORKER,
        "--",
        "python",
        "-c",
        "import os; print(os.environ['ESB_RUN_TEST_VALUE'], 'ESB_RUN_TEST_UNSET' in os.environ)",
        passed_env=["DOCKER_HOST", "ESB_RUN_TEST_VALUE"],
    )
    assert run.returncode == 0, run.report()
    assert "from-pants False" in run.stdout.splitlines(), run.stdout


def test_a_missing_command_exits_as_under_docker_run(
    session_checkout: Checkout, docker_client: DockerClient
) -> None:
    run = session_checkout.pants(
        "run", "--esb-run-network=none", WORKER, "--", "no-such-program", passed_env=["DOCKER_HOST"]
    )
    # The entrypoint script starts, and its `exec` fails as a shell's does.
    assert run.returncode == 127, run.report()
    assert "no-such-program" in run.stdout + run.stderr, run.report()
    assert "Traceback" not in run.stderr, run.report()


def test_a_container_the_engine_refuses_is_one_line_with_dockers_status(
    session_checkout: Checkout, docker_client: DockerClient
) -> None:
    run = session_checkout.pants(
        "run", "--esb-run-network=no-such-network", WORKER, passed_env=["DOCKER_HOST"]
    )
    assert run.returncode == ENGINE_FAILURE_STATUS, run.report()
    assert "Traceback" not in run.stderr, run.report()
    # The engine checks the network when it starts the container.
    [line] = [line for line in run.stderr.splitlines() if "refused starting a container" in line]
    assert "refused starting a container of esb/worker:latest: network no-such-network" in line
    assert "the `[esb-run]` options (`network`, `publish`, `env`)" in line, line


def test_no_engine_at_docker_host_is_one_line_naming_it(
    session_checkout: Checkout, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"unix://{scratch}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", host)
    run = session_checkout.pants("run", WORKER, passed_env=["DOCKER_HOST"])
    assert run.returncode == ENGINE_FAILURE_STATUS, run.report()
    assert "Traceback" not in run.stderr, run.report()
    [line] = [line for line in run.stderr.splitlines() if "Cannot reach a Docker engine" in line]
    assert line.startswith(
        f"Cannot reach a Docker engine at DOCKER_HOST={host} "
        "(FileNotFoundError: [Errno 2] No such file or directory) while connecting to it. "
        "Fix: start one and point DOCKER_HOST at it"
    ), line


def test_a_bad_publish_option_is_named_with_the_fix(session_checkout: Checkout) -> None:
    run = session_checkout.pants("run", "--esb-run-publish=['http:80']", WORKER)
    assert run.returncode != 0, run.report()
    assert "The `[esb-run].publish` option has 'http:80'." in run.stderr, run.report()
    assert "Fix: write each as `[[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`" in run.stderr
