"""A base of two platforms, linux/amd64 and linux/arm64, and a service on it, built on this amd64
machine without running anything of theirs: `pants esb-lock` pins each platform's `.deb`s,
`package` builds each platform's base from them and the service's venv from its lock's wheels of
each platform, and writes one OCI image index per image. The arm64 images then run in the test
engine under QEMU (`tests/infra/qemu.sh`), hold no x86-64 ELF file (and the amd64 ones no
aarch64 one), and `publish` pushes the index, from which `docker pull --platform` takes each."""

from __future__ import annotations

import io
import json
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from docker import DockerClient
from docker.models.images import Image
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from esb_contract.image_spec import Platform
from esb_contract.media_types import INDEX_MEDIA_TYPE
from imagetool.oci import OciLayout
from imagetool.tarlayer import read_layer_members
from integration.checkouts import Checkout, ImageTarget
from integration.containers import (
    HEALTHZ_SCRIPT,
    assert_stopped_by_the_garbage_ca,
    declared_dependencies,
    exec_python,
    run_to_exit,
    run_with_a_garbage_ca,
    running_container,
)
from integration.test_publish import PublishCheckout

# The registry's fixture, shared with the upstream base's and the publish tests.
from integration.test_upstream_base import SharedRegistry, test_registry  # noqa: F401

BASE = ImageTarget("base:esb-service-base", "esb_base_image", ())
API = ImageTarget.service("services/api:api")
PLATFORMS = ("linux/amd64", "linux/arm64")
ELF_MACHINES = {"amd64": "EM_X86_64", "arm64": "EM_AARCH64"}


@pytest.fixture(scope="module")
def publisher(repo_root: Path, test_registry: SharedRegistry) -> Iterator[PublishCheckout]:
    """The example monorepo with its base on both platforms, locked, then the base and the API
    built, set up to publish to the test registry."""
    with tempfile.TemporaryDirectory(prefix="esb-integration-platforms-") as directory:
        scratch = Path(directory)
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        checkout.substitute(
            "base/BUILD",
            r'repository="esb/service-base",',
            f'repository="esb/service-base",\n    platforms={list(PLATFORMS)!r},'.replace("'", '"'),
        )
        namespace = f"platforms-{uuid.uuid4().hex[:12]}"
        publisher = PublishCheckout.set_up(checkout, test_registry, namespace, scratch)
        lock = checkout.pants("esb-lock", BASE.address)
        assert lock.returncode == 0, lock.report()
        built = checkout.pants("package", "::")
        assert built.returncode == 0, built.report()
        # Each image's index, then each platform's manifest and config, as `package` prints them.
        for platform in PLATFORMS:
            assert f"  {platform}: sha256:" in built.stderr, built.report()
        yield publisher


@pytest.fixture(scope="module")
def checkout(publisher: PublishCheckout) -> Checkout:
    return publisher.checkout


@pytest.fixture(scope="module")
def arm64_api(checkout: Checkout, docker_client: DockerClient) -> Iterator[Image]:
    image = checkout.outputs(API).load_into(docker_client, Platform("arm64"))
    yield image
    docker_client.images.remove(image.id, force=True)


def test_the_lock_pins_each_platforms_packages(checkout: Checkout) -> None:
    lock = json.loads((checkout.root / "base/packages.lock.json").read_text())
    assert sorted(lock["architectures"]) == ["amd64", "arm64"]
    for architecture, section in lock["architectures"].items():
        assert section["platform"]["architecture"] == architecture
        assert {p["architecture"] for p in section["packages"]} <= {architecture, "all"}


def test_each_image_is_an_index_of_both_platforms(publisher: PublishCheckout) -> None:
    checkout = publisher.checkout
    targets = checkout.image_targets()
    assert len(targets) == 4, targets
    for target in targets:
        outputs = checkout.outputs(target)
        metadata = outputs.metadata
        assert metadata["media_type"] == INDEX_MEDIA_TYPE, target.address
        assert [p["platform"] for p in metadata["platforms"]] == list(PLATFORMS)
        top, images = OciLayout(outputs.layout).load_images()
        assert top.digest == metadata["digest"]
        assert [image.manifest.digest for image in images] == [
            p["digest"] for p in metadata["platforms"]
        ]
        assert [image.config["architecture"] for image in images] == ["amd64", "arm64"]


def test_each_platforms_image_holds_only_its_own_machine_code(checkout: Checkout) -> None:
    for target in checkout.image_targets():
        _, images = OciLayout(checkout.outputs(target).layout).load_images()
        for image in images:
            machines: dict[str, set[str]] = {}
            for layer in image.layers:
                with read_layer_members(image.layout.blob_path(layer.digest)) as members:
                    for info, data in members:
                        if data is None or data[:4] != b"\x7fELF":
                            continue
                        try:
                            machine = ELFFile(io.BytesIO(data))["e_machine"]
                        except ELFError:
                            continue
                        machines.setdefault(machine, set()).add(info.name)
            expected = ELF_MACHINES[image.config["architecture"]]
            assert set(machines) == {expected}, {
                machine: sorted(names)[:5] for machine, names in machines.items()
            }


def test_the_arm64_api_runs_under_emulation(
    checkout: Checkout, arm64_api: Image, docker_client: DockerClient
) -> None:
    # Through the entrypoint, so the trust script runs first, as for every command.
    machine = run_to_exit(docker_client, arm64_api.id, ["uname", "-m"], platform="linux/arm64")
    assert (machine.status, machine.stdout.strip()) == (0, "aarch64"), machine.report()
    dependencies = declared_dependencies(checkout.root / "services/api/pyproject.toml")
    script = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    modules = [name.replace("-", "_") for name in dependencies]
    imported = run_to_exit(
        docker_client, arm64_api.id, ["python", "-c", script, *modules], platform="linux/arm64"
    )
    assert imported.status == 0, imported.report()
    with running_container(docker_client, arm64_api.id, platform="linux/arm64") as container:
        status, body = exec_python(container, HEALTHZ_SCRIPT).splitlines()
    assert (status, json.loads(body)) == ("200", {"status": "ok"})


def test_required_trust_with_a_garbage_file_stops_before_the_command_on_arm64(
    arm64_api: Image, docker_client: DockerClient, tmp_path: Path
) -> None:
    result = run_with_a_garbage_ca(docker_client, arm64_api.id, tmp_path, platform="linux/arm64")
    assert_stopped_by_the_garbage_ca(result)


def test_publish_pushes_the_index_and_docker_pulls_each_platform(
    publisher: PublishCheckout, docker_client: DockerClient
) -> None:
    published = publisher.publish(API.address)
    assert published.returncode == 0, published.report()
    metadata = publisher.checkout.outputs(API).metadata
    name = publisher.name(metadata["repository"])
    repository = name.split("/", 1)[1]
    assert publisher.tagged_digest(repository, "latest") == metadata["digest"]
    registry = publisher.registry
    auth = {"username": registry.username, "password": registry.password}
    for entry in metadata["platforms"]:
        pulled = docker_client.images.pull(
            name, tag="latest", auth_config=auth, platform=entry["platform"]
        )
        try:
            assert pulled.id == entry["config_digest"], (entry, pulled.attrs)
        finally:
            # The name only: the arm64 image is the one the tests above loaded and run.
            docker_client.images.remove(f"{name}:latest")


def test_a_source_edit_rebuilds_each_platforms_source_layer_and_image_and_the_index(
    checkout: Checkout,
) -> None:
    before = checkout.outputs(API).metadata
    base_before = checkout.outputs(BASE).metadata["digest"]
    # Unique, so that no cache of an earlier run holds the edited layers.
    checkout.append(
        "services/api/src/esb_api/models.py", f"\n# Edited by the platforms test: {uuid.uuid4()}\n"
    )
    rebuilt = checkout.pants("package", BASE.address, API.address)
    assert rebuilt.returncode == 0, rebuilt.report()
    architectures = [p.split("/")[1] for p in PLATFORMS]
    assert sorted(rebuilt.completed_steps) == sorted(
        [
            *(f"Build the source layer of {API.address} for {a}" for a in architectures),
            *(f"Assemble the image {API.address} for {a}" for a in architectures),
            f"Assemble the image index of {API.address}",
        ]
    ), rebuilt.report()
    after = checkout.outputs(API).metadata
    assert after["digest"] != before["digest"]
    assert all(
        new["digest"] != old["digest"] for new, old in zip(after["platforms"], before["platforms"])
    )
    assert checkout.outputs(BASE).metadata["digest"] == base_before
