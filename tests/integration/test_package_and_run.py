"""`./pants package ::` in a copy of the checkout, then every image in a real Docker engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Iterator

import docker
import pytest
from docker import DockerClient
from docker.models.images import Image
from packaging.utils import canonicalize_name as canonical_name

from esb_contract.limits import MERGED_LAYER_BELOW_BYTES
from integration.checkouts import Checkout, ImageTarget
from integration.containers import (
    HEALTHZ_SCRIPT,
    declared_dependencies,
    exec_python,
    import_report,
    run_to_exit,
    running_container,
    wait_for_log,
)

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
COMMAND_OUTPUT = "the command ran"
# Every image has Debian's python3; a service image's PATH finds the venv's python first.
COMMAND = ["python3", "-c", f"print({COMMAND_OUTPUT!r})"]
API = "services/api:api"
SIGNER = "services/signer:signer"
WORKER = "services/worker:worker"


@pytest.fixture(scope="module")
def loaded_images(
    docker_client: DockerClient, built_checkout: Checkout, image_targets: list[ImageTarget]
) -> Iterator[dict[str, Image]]:
    """Each image loaded from its OCI layout, by address. Those that were not in the engine
    before are removed afterwards."""
    loaded: dict[str, Image] = {}
    added: list[str] = []
    try:
        for target in image_targets:
            outputs = built_checkout.outputs(target)
            try:
                docker_client.images.get(outputs.metadata["config_digest"])
            except docker.errors.ImageNotFound:
                added.append(outputs.metadata["config_digest"])
            loaded[target.address] = outputs.load_into(docker_client)
        yield loaded
    finally:
        for image_id in added:
            docker_client.images.remove(image_id, force=True)


def service_targets(image_targets: list[ImageTarget]) -> list[ImageTarget]:
    return [target for target in image_targets if target.is_service]


def test_package_writes_every_image_with_its_metadata(
    built_checkout: Checkout, image_targets: list[ImageTarget]
) -> None:
    for target in image_targets:
        outputs = built_checkout.outputs(target)
        assert (outputs.layout / "index.json").is_file(), f"{target.address}: no OCI layout"
        assert (outputs.layout / "manifest.json").is_file(), f"{target.address}: not loadable"
        metadata = outputs.metadata
        assert DIGEST.match(metadata["digest"]), metadata
        assert DIGEST.match(metadata["config_digest"]), metadata
        assert isinstance(metadata["repository"], str) and metadata["repository"], metadata
        assert isinstance(metadata["tags"], list), metadata
        assert metadata["layers"], metadata
        assert all(DIGEST.match(layer["digest"]) for layer in metadata["layers"]), metadata
        # Its blobs are the one copy under dist/blobs/, which its `blobs` links to.
        blobs = outputs.layout / "blobs"
        assert (
            blobs.is_symlink() and blobs.resolve() == (built_checkout.dist / "blobs").resolve()
        ), blobs
        own = [metadata["digest"], metadata["config_digest"]]
        own += [layer["digest"] for layer in metadata["layers"]]
        for digest in own:
            assert (blobs / "sha256" / digest.split(":")[1]).is_file(), (target.address, digest)


def test_a_service_image_lists_its_small_venv_layers_merged_into_one(
    built_checkout: Checkout, image_targets: list[ImageTarget]
) -> None:
    for target in service_targets(image_targets):
        outputs = built_checkout.outputs(target)
        made_by = [e["created_by"] for e in outputs.config["history"] if not e.get("empty_layer")]
        sizes = dict(zip(made_by, (layer["size"] for layer in outputs.metadata["layers"])))
        apart = outputs.layers_made_by("esb: distribution layer")
        merged = outputs.layers_made_by("esb: merged layer")
        assert len(merged) == 1 and merged[0].endswith(", venv"), (target.address, made_by)
        for contents in apart:
            size = sizes[f"esb: distribution layer ({contents})"]
            assert size >= MERGED_LAYER_BELOW_BYTES, (target.address, contents, size)
        # Every distribution of the image is in one of them, once.
        listed = [d for contents in [*apart, *merged] for d in contents.split(", ")]
        inventory = json.loads(outputs.inventory.read_text())
        python = [
            f"{canonical_name(e['name'])} {e['version']}"
            for e in inventory
            if e["kind"] == "python"
        ]
        assert sorted(listed) == sorted([*python, "venv"]), target.address


def _remove_image(docker_client: DockerClient, image_id: str) -> None:
    try:
        docker_client.images.remove(image_id, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_pants_run_loads_the_image_from_its_layout_and_runs_the_command(
    built_checkout: Checkout, image_targets: list[ImageTarget], docker_client: DockerClient
) -> None:
    # Before any test of this file loads the images (`loaded_images`), so that `run` must load.
    worker = next(target for target in image_targets if target.address == WORKER)
    metadata = built_checkout.outputs(worker).metadata
    _remove_image(docker_client, metadata["config_digest"])
    try:
        run = built_checkout.pants(
            "run",
            "--esb-run-network=none",
            WORKER,
            "--",
            "python",
            "-c",
            "print(6 * 7)",
            passed_env=["DOCKER_HOST"],
        )
        assert run.returncode == 0, run.report()
        assert "42" in run.stdout.splitlines(), run.stdout
        loaded = docker_client.images.get(metadata["config_digest"])
        assert f"{metadata['repository']}:{metadata['tags'][0]}" in loaded.tags, loaded.tags
    finally:
        _remove_image(docker_client, metadata["config_digest"])


def test_skopeo_reads_the_recorded_digest_and_layers_from_each_oci_layout(
    built_checkout: Checkout, image_targets: list[ImageTarget], skopeo: str
) -> None:
    for target in image_targets:
        outputs = built_checkout.outputs(target)
        inspected = json.loads(
            subprocess.run(
                [skopeo, "inspect", f"oci:{outputs.layout}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        metadata = outputs.metadata
        assert inspected["Digest"] == metadata["digest"], target.address
        assert inspected["Layers"] == [layer["digest"] for layer in metadata["layers"]]


def test_layouts_load_as_their_config_digest(
    built_checkout: Checkout, image_targets: list[ImageTarget], loaded_images: dict[str, Image]
) -> None:
    for target in image_targets:
        metadata = built_checkout.outputs(target).metadata
        image = loaded_images[target.address]
        assert image.id == metadata["config_digest"], target.address
        for tag in metadata["tags"]:
            assert f"{metadata['repository']}:{tag}" in image.tags, image.tags


def test_the_documented_skopeo_copy_loads_a_layout(
    built_checkout: Checkout,
    image_targets: list[ImageTarget],
    docker_client: DockerClient,
    skopeo: str,
) -> None:
    """`skopeo copy oci:dist/<path>.oci docker-daemon:<name>`, as the user guide has it."""
    (worker,) = [target for target in image_targets if target.address == WORKER]
    outputs = built_checkout.outputs(worker)
    image_id = outputs.metadata["config_digest"]
    name = f"{outputs.metadata['repository']}:{outputs.metadata['tags'][0]}"
    try:
        present = bool(docker_client.images.get(image_id))
    except docker.errors.ImageNotFound:
        present = False
    try:
        subprocess.run(
            [
                skopeo,
                "copy",
                "--dest-daemon-host",
                os.environ["DOCKER_HOST"],
                f"oci:{outputs.layout}",
                f"docker-daemon:{name}",
            ],
            check=True,
            capture_output=True,
        )
        assert docker_client.images.get(name).id == image_id
    finally:
        if not present:
            _remove_image(docker_client, image_id)


def test_entrypoint_runs_the_given_command(
    image_targets: list[ImageTarget], loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    for target in image_targets:
        result = run_to_exit(docker_client, loaded_images[target.address].id, COMMAND)
        assert result.status == 0, f"{target.address}: {result.report()}"
        assert COMMAND_OUTPUT in result.stdout, f"{target.address}: {result.report()}"


def test_required_ca_trust_without_a_mounted_ca_stops_before_the_command(
    image_targets: list[ImageTarget], loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    for target in image_targets:
        result = run_to_exit(
            docker_client,
            loaded_images[target.address].id,
            COMMAND,
            environment={"REQUIRE_CA_TRUST": "true"},
        )
        assert result.status == 1, f"{target.address}: {result.report()}"
        assert COMMAND_OUTPUT not in result.stdout, f"{target.address}: {result.report()}"
        assert "ensure_ca_trust: error" in result.stderr, f"{target.address}: {result.report()}"


def test_service_images_carry_uv(
    image_targets: list[ImageTarget], loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    for target in service_targets(image_targets):
        result = run_to_exit(
            docker_client, loaded_images[target.address].id, ["/usr/local/bin/uv", "--version"]
        )
        assert result.status == 0, f"{target.address}: {result.report()}"
        assert result.stdout.startswith("uv "), f"{target.address}: {result.report()}"


def test_service_venvs_import_every_declared_dependency_and_compiled_module(
    built_checkout: Checkout,
    image_targets: list[ImageTarget],
    loaded_images: dict[str, Image],
    docker_client: DockerClient,
) -> None:
    compiled_modules: list[str] = []
    for target in service_targets(image_targets):
        dependencies = declared_dependencies(built_checkout.root / target.source("pyproject.toml"))
        report = import_report(docker_client, loaded_images[target.address].id, dependencies)
        assert report["prefix"] == "/.venv", report
        assert report["failures"] == {}, f"{target.address}: {report}"
        unmapped = [name for name, modules in report["top_level"].items() if not modules]
        assert not unmapped, f"{target.address}: no modules installed for {unmapped}: {report}"
        compiled_modules += report["extensions"]
    # The example services depend on compiled wheels (pydantic-core, cryptography, orjson): had
    # none been found, the check above would have tested pure Python only.
    assert compiled_modules


def test_signer_self_test_passes(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    result = run_to_exit(
        docker_client, loaded_images[SIGNER].id, ["python", "-m", "esb_signer", "--self-test"]
    )
    assert result.status == 0, result.report()
    assert json.loads(result.stdout) == {"self_test": "ok", "failed_checks": []}, result.report()


def test_api_answers_healthz_inside_its_container(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    with running_container(docker_client, loaded_images[API].id) as container:
        output = exec_python(container, HEALTHZ_SCRIPT)
    status, body = output.splitlines()
    assert status == "200"
    assert json.loads(body) == {"status": "ok"}


def test_worker_starts_and_stops_cleanly_on_docker_stop(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = loaded_images[WORKER]
    # What `docker stop` sends: the image's StopSignal, else Docker's default.
    stop_signal = image.attrs["Config"].get("StopSignal") or "SIGTERM"
    with running_container(docker_client, image.id) as container:
        logs = wait_for_log(container, "worker_started")
        assert "worker_started" in logs, logs
        container.stop(timeout=10)
        status = container.wait(timeout=30)["StatusCode"]
        logs = container.logs().decode()
    assert status == 0, logs
    stopped = [json.loads(line) for line in logs.splitlines() if "worker_stopped" in line]
    assert [entry["reason"] for entry in stopped] == [stop_signal], logs
