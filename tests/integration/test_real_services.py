"""Real open-source services go through with only a BUILD file: `pants esb-lock` locks them,
`lint` passes, `package` builds them, and each runs in the test engine as its authors meant it
to start: a WSGI server answering a request, a CLI started by its console script, a published
application whose dependencies include sdist-only ones."""

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
    GRIP,
    PYPISERVER,
    PYPISERVER_EXTRA,
    PYPISERVER_SDIST,
    PYPISERVER_VOLUME,
    REAL_SERVICES,
    SERVICE_ACCOUNT,
    TABULATE,
    TABULATE_SDIST,
    RealService,
    add_real_services,
    lock_as_of_exclude_newer,
    probe_pypiserver,
    sdist_cache,
)

TARGETS = tuple(service.target for service in REAL_SERVICES)

METADATA_SCRIPT = """
import importlib.metadata as metadata, json, sys
name = sys.argv[1]
print(json.dumps({
    "version": metadata.version(name),
    "entry_points": sorted(f"{e.group}:{e.name}" for e in metadata.distribution(name).entry_points),
}))
"""

# What /app holds: BUILD files (never shipped) and .py files without their bytecode.
APP_SCRIPT = """
import json, os
build_files, uncompiled = [], []
for root, dirs, files in os.walk("/app"):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for name in files:
        path = os.path.join(root, name)
        if name == "BUILD" or name.startswith("BUILD."):
            build_files.append(path)
        if name.endswith(".py"):
            stem = name[:-3]
            cache = os.path.join(root, "__pycache__")
            if not any(c.startswith(stem + ".") and c.endswith(".pyc")
                       for c in (os.listdir(cache) if os.path.isdir(cache) else [])):
                uncompiled.append(path)
print(json.dumps({"build_files": build_files, "uncompiled": uncompiled}))
"""


@pytest.fixture(scope="module")
def real_checkout(repo_root: Path) -> Iterator[Checkout]:
    """The checkout with the real services laid out and locked by `pants esb-lock`."""
    with scratch_directory("esb-integration-real-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        add_real_services(checkout, sdist_cache())
        lock_as_of_exclude_newer(checkout, *TARGETS)
        yield checkout


@pytest.fixture(scope="module")
def real_images(real_checkout: Checkout, docker_client: DockerClient) -> Iterator[dict[str, Image]]:
    package = real_checkout.pants("package", *TARGETS)
    assert package.returncode == 0, package.report()
    images = {}
    for service in REAL_SERVICES:
        images[service.directory] = real_checkout.load_service_image(service.target, docker_client)
    yield images
    for image in images.values():
        docker_client.images.remove(image.id, force=True)


def test_lint_passes_on_the_locks_esb_lock_wrote(real_checkout: Checkout) -> None:
    lint = real_checkout.pants("lint", *TARGETS)
    assert lint.returncode == 0, lint.report()


def test_a_wsgi_service_answers_as_started_by_its_console_script(
    real_images: dict[str, Image], docker_client: DockerClient
) -> None:
    output, metadata_json, user = probe_pypiserver(
        docker_client, real_images[PYPISERVER.directory].id, METADATA_SCRIPT, "pypiserver"
    )
    metadata = json.loads(metadata_json)
    status, _, body = output.partition("\n")
    assert status == "200", output
    assert "Simple Index" in body, output
    assert metadata["version"] == PYPISERVER_SDIST.version
    assert "paste.app_factory:main" in metadata["entry_points"]
    assert "console_scripts:pypi-server" in metadata["entry_points"]
    assert user == SERVICE_ACCOUNT
    volumes = real_images[PYPISERVER.directory].attrs["Config"]["Volumes"]
    assert volumes == {PYPISERVER_VOLUME: {}}


@pytest.mark.parametrize(
    "service, installed", [(PYPISERVER, True), (TABULATE, False)], ids=["extra", "no-extra"]
)
def test_the_extras_a_target_names_are_installed_from_the_lock(
    service: RealService,
    installed: bool,
    real_images: dict[str, Image],
    docker_client: DockerClient,
) -> None:
    name, version = PYPISERVER_EXTRA
    result = run_to_exit(
        docker_client,
        real_images[service.directory].id,
        (
            ["python", "-c", METADATA_SCRIPT, name]
            if installed
            else ["python", "-c", f"import {name}"]
        ),
    )
    if installed:
        assert result.status == 0, result.report()
        assert json.loads(result.stdout)["version"] == version
    else:
        assert result.status != 0 and "ModuleNotFoundError" in result.stderr, result.report()


def test_a_cli_starts_by_its_console_script_with_its_dynamic_version(
    real_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = real_images[TABULATE.directory].id
    result = run_to_exit(docker_client, image)
    assert result.status == 0, result.report()
    assert "Usage: tabulate" in result.stdout, result.report()

    version = run_to_exit(docker_client, image, ["python", "-c", METADATA_SCRIPT, "tabulate"])
    assert version.status == 0, version.report()
    assert json.loads(version.stdout)["version"] == TABULATE_SDIST.version


def test_sdist_only_dependencies_are_built_and_installed(
    real_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = real_images[GRIP.directory]
    result = run_to_exit(docker_client, image.id, ["grip", "--version"])
    assert result.status == 0, result.report()
    assert "Grip 4.6.2" in result.stdout + result.stderr, result.report()

    imports = run_to_exit(
        docker_client,
        image.id,
        ["python", "-c", "import docopt, path_and_address; print(docopt.__version__)"],
    )
    assert imports.status == 0 and imports.stdout.strip() == "0.6.2", imports.report()
    # Its wheel, built from the sdist, is installed like any other: docopt's is a few kB, so
    # the image lists it in its layer merged from the small ones.
    history = [entry.get("CreatedBy", "") for entry in image.history()]
    merged = [e for e in history if e.startswith("esb: merged layer (") and e.endswith(")")]
    assert len(merged) == 1, history
    assert "docopt 0.6.2" in merged[0][len("esb: merged layer (") : -1].split(", "), history


@pytest.mark.parametrize("service", REAL_SERVICES, ids=lambda s: s.directory)
def test_app_ships_bytecode_and_no_build_file(
    service: RealService, real_images: dict[str, Image], docker_client: DockerClient
) -> None:
    result = run_to_exit(
        docker_client, real_images[service.directory].id, ["python", "-c", APP_SCRIPT]
    )
    assert result.status == 0, result.report()
    app = json.loads(result.stdout)
    assert app["build_files"] == []
    assert app["uncompiled"] == []
