"""A uv workspace of published projects (pypiserver and build as member services, packaging as
the library member both depend on), laid out from their sdists with only our root
`pyproject.toml` and BUILD files: `pants esb-lock` locks it once with the root's build
constraints (the authors' backends are unpinned), and each image installs the library member
as a wheel and runs as its authors start it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from docker import DockerClient
from docker.models.images import Image

from integration.checkouts import Checkout, scratch_directory
from integration.containers import run_to_exit
from integration.real_projects import (
    PACKAGING,
    SERVICE_ACCOUNT,
    WORKSPACE_BUILD_CLI,
    WORKSPACE_LIBRARY,
    WORKSPACE_PYPISERVER,
    WORKSPACE_ROOT,
    WORKSPACE_SERVICES,
    add_real_workspace,
    lock_as_of_exclude_newer,
    probe_pypiserver,
    sdist_cache,
)

TARGETS = tuple(service.target for service in WORKSPACE_SERVICES)
# Where the library comes from in an image, and the version it reports.
LIBRARY_SCRIPT = (
    "import importlib.metadata, json, packaging; "
    "print(json.dumps([packaging.__file__, importlib.metadata.version('packaging')]))"
)


@pytest.fixture(scope="module")
def workspace_checkout(repo_root: Path) -> Iterator[Checkout]:
    with scratch_directory("esb-integration-real-workspace-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        add_real_workspace(checkout, sdist_cache())
        run = lock_as_of_exclude_newer(checkout, *TARGETS)
        assert run.stdout.count(f"Wrote {WORKSPACE_ROOT}/uv.lock") == 1, run.stdout
        assert f"Wrote {WORKSPACE_ROOT}/build-constraints.txt" in run.stdout, run.stdout
        yield checkout


@pytest.fixture(scope="module")
def workspace_images(
    workspace_checkout: Checkout, docker_client: DockerClient
) -> Iterator[dict[str, Image]]:
    package = workspace_checkout.pants("package", *TARGETS)
    assert package.returncode == 0, package.report()
    images = {
        service.directory: workspace_checkout.load_service_image(service.target, docker_client)
        for service in WORKSPACE_SERVICES
    }
    yield images
    for image in images.values():
        docker_client.images.remove(image.id, force=True)


def test_the_root_constraints_pin_every_unpinned_backend(workspace_checkout: Checkout) -> None:
    constraints = (workspace_checkout.root / WORKSPACE_ROOT / "build-constraints.txt").read_text()
    # Every member that is a package, by its directory relative to the root.
    for member in (WORKSPACE_LIBRARY, *(service.path for service in WORKSPACE_SERVICES)):
        relative = member.removeprefix(f"{WORKSPACE_ROOT}/")
        assert f"# build: local {relative} requires=" in constraints, constraints
    assert "flit-core==" in constraints and "hatchling==" in constraints, constraints
    lint = workspace_checkout.pants("lint", *TARGETS)
    assert lint.returncode == 0, lint.report()


def test_the_wsgi_member_answers_with_the_library_member_installed(
    workspace_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = workspace_images[WORKSPACE_PYPISERVER.directory].id
    output, library_json, user = probe_pypiserver(docker_client, image, LIBRARY_SCRIPT)
    library = json.loads(library_json)
    status, _, body = output.partition("\n")
    assert status == "200" and "Simple Index" in body, output
    assert library[0].startswith("/.venv/") and library[1] == PACKAGING.version, library
    assert user == SERVICE_ACCOUNT


def test_the_cli_member_starts_by_its_console_script(
    workspace_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = workspace_images[WORKSPACE_BUILD_CLI.directory].id
    result = run_to_exit(docker_client, image)
    assert result.status == 0, result.report()
    assert WORKSPACE_BUILD_CLI.sdist is not None
    assert WORKSPACE_BUILD_CLI.sdist.version in result.stdout + result.stderr, result.report()

    library = run_to_exit(docker_client, image, ["python", "-c", LIBRARY_SCRIPT])
    assert library.status == 0, library.report()
    path, version = json.loads(library.stdout)
    assert path.startswith("/.venv/") and version == PACKAGING.version
    # Only what the member installs: pypiserver is not in the build CLI's image.
    probe = run_to_exit(
        docker_client,
        image,
        ["python", "-c", "import importlib.util as u; print(u.find_spec('pypiserver') is None)"],
    )
    assert probe.stdout.strip() == "True", probe.report()
