"""Fixtures of the integration tests: the checkout under test, a shared build of it, the engine."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import docker
import pytest
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget
from integration.prerequisites import unavailable


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty directory, deleted after the test (builds leave hundreds of megabytes)."""
    with tempfile.TemporaryDirectory(prefix="esb-integration-") as directory:
        yield Path(directory)


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
    with tempfile.TemporaryDirectory(prefix="esb-integration-session-") as directory:
        yield Checkout.copy_of(repo_root, Path(directory) / "checkout")


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


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    host = os.environ.get("DOCKER_HOST")
    if not host:
        unavailable(
            "DOCKER_HOST is not set: tests/infra/docker-engine.sh start, then "
            'eval "$(tests/infra/docker-engine.sh env)"'
        )
    client = docker.from_env()
    try:
        client.ping()
    except docker.errors.DockerException as error:
        client.close()
        unavailable(f"no Docker engine answers at DOCKER_HOST={host}: {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def skopeo() -> str:
    path = shutil.which("skopeo")
    if not path:
        unavailable("skopeo is not installed: apt-get install skopeo")
    return path
