"""A base of two platforms, linux/amd64 and linux/arm64, and a service on it, built on this amd64
machine without running anything of theirs: `pants esb-lock` pins each platform's `.deb`s,
`package` builds each platform's base from them and the service's venv from its lock's wheels of
each platform, and writes one OCI image index per image. The arm64 images then run in the test
engine under QEMU (`tests/infra/qemu.sh`), hold no x86-64 ELF file (and the amd64 ones no
aarch64 one), and `publish` pushes the index, from which `docker pull --platform` takes each."""

from __future__ import annotations

import io
import json
import shutil
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
from integration.checkouts import Checkout, ImageTarget, scratch_directory
from integration.containers import (
    HEALTHZ_SCRIPT,
    assert_stopped_by_the_garbage_ca,
    declared_dependencies,
    exec_python,
    import_report,
    run_to_exit,
    run_with_a_garbage_ca,
    running_container,
)
from integration.test_publish import PublishCheckout

# The registry's fixture, shared with the upstream base's and the publish tests.
from integration.test_upstream_base import SharedRegistry, test_registry  # noqa: F401

BASE = ImageTarget("base:esb-service-base", "esb_base_image", ())
API = ImageTarget.service("services/api:api")
WORKER = ImageTarget.service("services/worker:worker")
PLATFORMS = ("linux/amd64", "linux/arm64")
ELF_MACHINES = {"amd64": "EM_X86_64", "arm64": "EM_AARCH64"}


def two_platform_copy(repo_root: Path, destination: Path) -> Checkout:
    """A copy of the example monorepo whose base is built for both platforms."""
    checkout = Checkout.copy_of(repo_root, destination)
    checkout.substitute(
        "base/BUILD",
        r'repository="esb/service-base",',
        f'repository="esb/service-base",\n    platforms={list(PLATFORMS)!r},'.replace("'", '"'),
    )
    return checkout


@pytest.fixture(scope="module")
def publisher(repo_root: Path, test_registry: SharedRegistry) -> Iterator[PublishCheckout]:
    """The example monorepo with its base on both platforms, locked, then the base and the API
    built, set up to publish to the test registry."""
    with scratch_directory("esb-integration-platforms-") as scratch:
        checkout = two_platform_copy(repo_root, scratch / "checkout")
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
    with running_container(docker_client, arm64_api.id, platform="linux/arm64") as container:
        status, body = exec_python(container, HEALTHZ_SCRIPT).splitlines()
    assert (status, json.loads(body)) == ("200", {"status": "ok"})


def test_every_arm64_service_imports_its_dependencies_and_compiled_modules(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    compiled_modules: list[str] = []
    services = [target for target in checkout.image_targets() if target.is_service]
    assert len(services) == 3, services
    for target in services:
        image = checkout.outputs(target).load_into(docker_client, Platform("arm64"))
        try:
            dependencies = declared_dependencies(checkout.root / target.source("pyproject.toml"))
            report = import_report(docker_client, image.id, dependencies, platform="linux/arm64")
        finally:
            # The API stays: the tests below run it (loading it again gives the same image).
            if target.address != API.address:
                docker_client.images.remove(image.id, force=True)
        assert report["failures"] == {}, f"{target.address}: {report}"
        unmapped = [name for name, modules in report["top_level"].items() if not modules]
        assert not unmapped, f"{target.address}: no modules installed for {unmapped}: {report}"
        compiled_modules += report["extensions"]
    # aarch64 extension modules (pydantic-core, cryptography, orjson) imported under emulation.
    assert compiled_modules


def test_the_arm64_signer_passes_its_self_test(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    signer = ImageTarget.service("services/signer:signer")
    image = checkout.outputs(signer).load_into(docker_client, Platform("arm64"))
    try:
        result = run_to_exit(
            docker_client,
            image.id,
            ["python", "-m", "esb_signer", "--self-test"],
            platform="linux/arm64",
        )
    finally:
        docker_client.images.remove(image.id, force=True)
    assert result.status == 0, result.report()
    assert json.loads(result.stdout) == {"self_test": "ok", "failed_checks": []}, result.report()


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


def test_a_clean_build_at_another_path_gives_the_same_index_digests(
    repo_root: Path, checkout: Checkout, scratch: Path
) -> None:
    # A path of another length, so that tar headers and padding would differ if a path leaked.
    second = two_platform_copy(repo_root, scratch / "a-second-checkout-at-a-longer-path")
    lock = "base/packages.lock.json"
    (second.root / lock).write_bytes((checkout.root / lock).read_bytes())
    targets = [BASE, API]
    # Every process runs again; only downloads (checked by digest) come from the store.
    rebuilt = second.pants("--no-local-cache", "package", *(t.address for t in targets))
    assert rebuilt.returncode == 0, rebuilt.report()
    for architecture in ("amd64", "arm64"):
        step = f"Assemble the image {API.address} for {architecture}"
        assert step in rebuilt.completed_steps, rebuilt.report()
    assert second.digests(targets) == checkout.digests(targets)
    for target in targets:
        platforms = [p["digest"] for p in checkout.outputs(target).metadata["platforms"]]
        assert [p["digest"] for p in second.outputs(target).metadata["platforms"]] == platforms


def test_a_source_edit_rebuilds_each_platforms_image_and_the_index(
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


def test_a_base_on_an_upstream_index_pulls_and_builds_on_each_platforms_image(
    publisher: PublishCheckout,
) -> None:
    checkout = publisher.checkout
    # The two-platform base, published, is the upstream index of a base of the same platforms.
    published = publisher.publish(BASE.address)
    assert published.returncode == 0, published.report()
    upstream = checkout.outputs(BASE).metadata
    reference = f"{publisher.name(upstream['repository'])}@{upstream['digest']}"
    (checkout.root / "upstream-base").mkdir()
    for script in ("ensure_ca_trust.sh", "entrypoint.sh"):
        shutil.copy2(checkout.root / "base" / script, checkout.root / "upstream-base" / script)
    (checkout.root / "upstream-base/BUILD").write_text(
        f'esb_base_image(name="on-index", repository="esb/on-index", upstream="{reference}", '
        f"platforms={list(PLATFORMS)!r})\n".replace("'", '"')
    )
    checkout.substitute(
        f"{WORKER.spec_path}/BUILD", r'\bbase\s*=\s*"[^"]*"', 'base="//upstream-base:on-index"'
    )
    built = checkout.pants("package", "upstream-base:on-index", WORKER.address)
    assert built.returncode == 0, built.report()
    for platform in PLATFORMS:
        pull = f"Pull {reference} ({platform}) for upstream-base:on-index"
        assert any(step.startswith(pull) for step in built.completed_steps), built.report()
    worker = checkout.outputs(WORKER).metadata
    assert [p["platform"] for p in worker["platforms"]] == list(PLATFORMS)
    # Each platform's image starts with the layers of the upstream index's image of its platform.
    for ours, theirs in zip(worker["platforms"], upstream["platforms"]):
        inherited = [layer["digest"] for layer in theirs["layers"]]
        assert [layer["digest"] for layer in ours["layers"]][: len(inherited)] == inherited
    _, images = OciLayout(checkout.outputs(WORKER).layout).load_images()
    assert [image.config["architecture"] for image in images] == ["amd64", "arm64"]
