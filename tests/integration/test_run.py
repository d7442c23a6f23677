"""`pants run` of an image, in Docker and in Podman: variables and arguments reach the container,
its exit status is `pants run`'s, a load sends the image's own blobs, and every failure is one
line naming the engine and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker
import pytest
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget
from integration.conftest import RunEngine
from integration.containers import HEALTHZ_SCRIPT

API = "services/api:api"
WORKER = "services/worker:worker"
WORKER_IMAGE = "esb/worker:latest"
# `docker run`'s status for a container that could not be loaded or started.
ENGINE_FAILURE_STATUS = 125
PRINT_AND_EXIT = (
    "import os, sys; "
    "print(os.environ['GREETING'], os.environ['FROM_PANTS'], sys.argv[1:]); "
    "sys.exit(7)"
)


def _remove_image(client: DockerClient, name: str) -> None:
    """So that `pants run` must load the image."""
    try:
        client.images.remove(client.images.get(name).id, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_env_and_arguments_reach_the_container_and_its_status_is_the_runs(
    session_checkout: Checkout, run_engine: RunEngine
) -> None:
    _remove_image(run_engine.client, WORKER_IMAGE)
    run = run_engine.run(
        session_checkout,
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
    )
    assert run.returncode == 7, run.report()
    assert "hello world a=b ['--timeout', '-x']" in run.stdout.splitlines(), run.stdout
    assert f"Loading {WORKER_IMAGE} (" in run.stderr, run.report()
    assert f"MB) into the {run_engine.label}" in run.stderr, run.report()
    assert "Traceback" not in run.stderr, run.report()


def test_load_only_loads_the_image_with_its_own_blobs_alone(
    built_checkout: Checkout, image_targets: list[ImageTarget], run_engine: RunEngine
) -> None:
    _remove_image(run_engine.client, WORKER_IMAGE)
    run = run_engine.run(built_checkout, "--esb-run-load-only", WORKER)
    assert run.returncode == 0, run.report()
    assert run.stdout.splitlines()[-1] == f"Loaded {WORKER_IMAGE}", run.stdout
    [worker] = [target for target in image_targets if target.address == WORKER]
    metadata = built_checkout.outputs(worker).metadata
    assert run_engine.client.images.get(WORKER_IMAGE).id == metadata["config_digest"]
    # What was sent is the image's blobs (and a few kB of archive headers and manifests), not
    # the other images' blobs that its layout's `blobs` link reaches too.
    [sent_mb] = re.findall(rf"Loading {WORKER_IMAGE} \((\d+\.\d) MB\)", run.stderr)
    blobs = built_checkout.dist / "blobs" / "sha256"
    own = [metadata["digest"], metadata["config_digest"]]
    own += [layer["digest"] for layer in metadata["layers"]]
    own_bytes = sum((blobs / digest.split(":")[1]).stat().st_size for digest in set(own))
    all_bytes = sum(blob.stat().st_size for blob in blobs.iterdir())
    assert abs(float(sent_mb) - own_bytes / 1e6) <= 0.1, (sent_mb, own_bytes)
    assert all_bytes > own_bytes + 1e6, "dist/ holds one image only: the check above proves nothing"
    # Loaded already: nothing is sent again. A registry whose entry sets `use_local_alias`
    # names it in the engine under its alias too, as Pants' `docker_image` does.
    alias = "{'local': {'address': '127.0.0.1:5999', 'default': True, 'use_local_alias': True}}"
    again = run_engine.run(
        built_checkout, "--esb-run-load-only", f"--esb-registries-publish={alias}", WORKER
    )
    assert again.returncode == 0 and "Loading" not in again.stderr, again.report()
    assert run_engine.client.images.get(f"local/{WORKER_IMAGE}").id == metadata["config_digest"]


def test_the_api_answers_inside_the_container_pants_run_starts(
    session_checkout: Checkout, run_engine: RunEngine
) -> None:
    run = run_engine.run(
        session_checkout,
        "--esb-run-network=none",
        "--no-esb-run-publish-ports",
        API,
        "--",
        "sh",
        "-c",
        'python -m esb_api & exec python -c "$1"',
        "sh",
        HEALTHZ_SCRIPT,
    )
    assert run.returncode == 0, run.report()
    status, body = run.stdout.splitlines()[-2:]
    assert (status, json.loads(body)) == ("200", {"status": "ok"}), run.stdout


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
    session_checkout: Checkout, run_engine: RunEngine
) -> None:
    run = run_engine.run(
        session_checkout, "--esb-run-network=none", WORKER, "--", "no-such-program"
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


@pytest.mark.parametrize(
    "engine, variable, fix",
    [
        pytest.param("docker", "DOCKER_HOST", "start one and point DOCKER_HOST at it", id="docker"),
        pytest.param(
            "podman",
            "CONTAINER_HOST",
            "start Podman's API service there (`podman system service --time=0 {host}`)",
            id="podman",
        ),
    ],
)
def test_no_engine_where_its_variable_points_is_one_line_naming_it(
    session_checkout: Checkout,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    variable: str,
    fix: str,
) -> None:
    host = f"unix://{scratch}/no-engine.sock"
    monkeypatch.setenv(variable, host)
    run = session_checkout.pants("run", f"--esb-run-engine={engine}", WORKER, passed_env=[variable])
    assert run.returncode == ENGINE_FAILURE_STATUS, run.report()
    assert "Traceback" not in run.stderr, run.report()
    [line] = [line for line in run.stderr.splitlines() if "Cannot reach a" in line]
    assert line.startswith(
        f"Cannot reach a {engine.capitalize()} engine at {variable}={host} "
        "(FileNotFoundError: [Errno 2] No such file or directory) while connecting to it. "
        f"Fix: {fix.format(host=host)}"
    ), line


def test_an_engine_pants_run_does_not_know_is_named_with_the_fix(
    session_checkout: Checkout,
) -> None:
    run = session_checkout.pants("run", "--esb-run-engine=containerd", WORKER)
    assert run.returncode != 0, run.report()
    assert "The `[esb-run].engine` option, 'containerd', is not an engine" in run.stderr
    assert "Fix: name one of 'docker', 'podman'" in run.stderr, run.report()


def test_a_bad_publish_option_is_named_with_the_fix(session_checkout: Checkout) -> None:
    run = session_checkout.pants("run", "--esb-run-publish=['http:80']", WORKER)
    assert run.returncode != 0, run.report()
    assert "The `[esb-run].publish` option has 'http:80'." in run.stderr, run.report()
    assert "Fix: write each as `[[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`" in run.stderr
