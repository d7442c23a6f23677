"""Fixtures of the integration tests: the checkout under test, a shared build of it, the engine."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import docker
import pytest
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget, PantsRun, scratch_directory
from integration.prerequisites import unavailable


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty directory, deleted after the test (builds leave hundreds of megabytes)."""
    with scratch_directory("esb-integration-") as directory:
        yield directory


@pytest.fixture(scope="session")
def repo_root() -> Path:
    value = os.environ.get("ESB_REPO_ROOT")
    if not value:
        unavailable("ESB_REPO_ROOT (the checkout to test) is not set: run the tests with tests/run")
    return Path(value)


@pytest.fixture
def checkout(repo_root: Path, scratch: Path) -> Checkout:
    """A copy of the checkout for one test to change."""
    return Checkout.copy_of(repo_root, scratch / "checkout")


@pytest.fixture(scope="session")
def session_checkout(repo_root: Path) -> Iterator[Checkout]:
    """A copy of the checkout shared by the tests that only read it."""
    with scratch_directory("esb-integration-session-") as directory:
        yield Checkout.copy_of(repo_root, directory / "checkout")


@pytest.fixture(scope="session")
def image_targets(session_checkout: Checkout) -> list[ImageTarget]:
    targets = session_checkout.image_targets()
    assert any(t.is_service for t in targets) and any(not t.is_service for t in targets), targets
    return targets


@pytest.fixture(scope="session")
def built_checkout(session_checkout: Checkout) -> Checkout:
    """The session checkout after `./pants package ::`."""
    run = session_checkout.pants("package", "::")
    assert run.returncode == 0, run.report()
    return session_checkout


def _answering_client(
    variable: str, what: str, script: str, connect: Callable[[str], DockerClient]
) -> Iterator[DockerClient]:
    """A client of the engine that `variable` names, which tests/infra/`script` serves."""
    host = os.environ.get(variable)
    if not host:
        unavailable(
            f"{variable} is not set: tests/infra/{script} start, then "
            f'eval "$(tests/infra/{script} env)"'
        )
    client = connect(host)
    try:
        client.ping()
    except docker.errors.DockerException as error:
        client.close()
        unavailable(f"no {what} answers at {variable}={host}: {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    yield from _answering_client(
        "DOCKER_HOST", "Docker engine", "docker-engine.sh", lambda _host: docker.from_env()
    )


@pytest.fixture(scope="session")
def podman_client() -> Iterator[DockerClient]:
    """The Docker-compatible API of tests/infra/podman.sh's service."""
    yield from _answering_client(
        "ESB_TEST_PODMAN_HOST",
        "Podman service",
        "podman.sh",
        lambda host: DockerClient(base_url=host),
    )


@dataclass(frozen=True)
class RunEngine:
    """An engine `pants run` loads into and runs in, and the client of the test to look into it."""

    name: str
    """The `[esb-run].engine` that picks it."""
    variable: str
    """The variable `pants run` finds it by."""
    client: DockerClient

    @property
    def label(self) -> str:
        """How `pants run` names it in messages, e.g. `Podman engine at CONTAINER_HOST=...`."""
        return f"{self.name.capitalize()} engine at {self.variable}={os.environ[self.variable]}"

    def run(self, checkout: Checkout, *args: str, passed_env: tuple[str, ...] = ()) -> PantsRun:
        """`./pants run --esb-run-engine=<name> ARGS` in `checkout`, finding this engine."""
        return checkout.pants(
            "run", f"--esb-run-engine={self.name}", *args, passed_env=(self.variable, *passed_env)
        )


@pytest.fixture(params=["docker", "podman"])
def run_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RunEngine:
    """Each engine `pants run` takes, in turn: the test's Docker engine, then its Podman
    service, found as `pants run` finds them."""
    if request.param == "docker":
        return RunEngine("docker", "DOCKER_HOST", request.getfixturevalue("docker_client"))
    client = request.getfixturevalue("podman_client")
    monkeypatch.setenv("CONTAINER_HOST", os.environ["ESB_TEST_PODMAN_HOST"])
    return RunEngine("podman", "CONTAINER_HOST", client)


@pytest.fixture(scope="session")
def skopeo() -> str:
    path = shutil.which("skopeo")
    if not path:
        unavailable("skopeo is not installed: apt-get install skopeo")
    return path
