"""An arm64 base and a service on it, built on this amd64 machine without running anything of
theirs: `pants esb-lock` pins the base's arm64 `.deb`s, `package` builds the base from them and
the service's venv from its lock's aarch64 wheels. The images then run in the test engine under
QEMU (`tests/infra/qemu.sh`), and hold no x86-64 ELF file."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import pytest
from docker import DockerClient
from docker.models.images import Image
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from imagetool.oci import OciLayout
from imagetool.tarlayer import read_layer_members
from integration.checkouts import Checkout, ImageTarget
from integration.containers import (
    HEALTHZ_SCRIPT,
    declared_dependencies,
    exec_python,
    run_to_exit,
    running_container,
)

BASE = "base:esb-service-base"
API = ImageTarget.service("services/api:api")
ARM64 = "linux/arm64"
CA_DIR = "/etc/esb/ca-certificates"


@pytest.fixture(scope="module")
def arm64_checkout(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Checkout:
    """The example monorepo with its base on arm64: locked, then the base and the API built."""
    checkout = Checkout.copy_of(repo_root, tmp_path_factory.mktemp("arm64") / "checkout")
    checkout.substitute(
        "base/BUILD",
        r'repository="esb/service-base",',
        f'repository="esb/service-base",\n    platforms=["{ARM64}"],',
    )
    lock = checkout.pants("esb-lock", BASE)
    assert lock.returncode == 0, lock.report()
    built = checkout.pants("package", BASE, API.address)
    assert built.returncode == 0, built.report()
    return checkout


@pytest.fixture(scope="module")
def api_image(arm64_checkout: Checkout, docker_client: DockerClient) -> Iterator[Image]:
    image = arm64_checkout.outputs(API).load_into(docker_client)
    yield image
    docker_client.images.remove(image.id, force=True)


def test_the_lock_pins_arm64_packages_only(arm64_checkout: Checkout) -> None:
    lock = json.loads((arm64_checkout.root / "base/packages.lock.json").read_text())
    assert list(lock["architectures"]) == ["arm64"]
    section = lock["architectures"]["arm64"]
    assert section["platform"]["architecture"] == "arm64"
    assert {p["architecture"] for p in section["packages"]} <= {"arm64", "all"}
    assert any(p["architecture"] == "arm64" for p in section["packages"])


def test_the_images_say_arm64_and_hold_no_x86_64_code(arm64_checkout: Checkout) -> None:
    for target in (ImageTarget(BASE, "esb_base_image", ()), API):
        image = OciLayout(arm64_checkout.outputs(target).layout).load_image()
        assert image.config["architecture"] == "arm64", target.address
        machines: dict[str, set[str]] = {}
        for layer in image.layers:
            with read_layer_members(image.layout.blob_path(layer.digest)) as members:
                for info, data in members:
                    if data is not None and data[:4] == b"\x7fELF":
                        try:
                            machine = ELFFile(io.BytesIO(data))["e_machine"]
                        except ELFError:
                            continue
                        machines.setdefault(machine, set()).add(info.name)
        assert set(machines) == {"EM_AARCH64"}, {
            machine: sorted(names)[:5] for machine, names in machines.items()
        }


def test_the_api_runs_on_arm64_under_emulation(
    arm64_checkout: Checkout, api_image: Image, docker_client: DockerClient
) -> None:
    # Through the entrypoint, so the trust script runs first, as for every command.
    machine = run_to_exit(docker_client, api_image.id, ["uname", "-m"], platform=ARM64)
    assert (machine.status, machine.stdout.strip()) == (0, "aarch64"), machine.report()
    dependencies = declared_dependencies(arm64_checkout.root / "services/api/pyproject.toml")
    script = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    modules = [name.replace("-", "_") for name in dependencies]
    imported = run_to_exit(
        docker_client, api_image.id, ["python", "-c", script, *modules], platform=ARM64
    )
    assert imported.status == 0, imported.report()
    with running_container(docker_client, api_image.id, platform=ARM64) as container:
        status, body = exec_python(container, HEALTHZ_SCRIPT).splitlines()
    assert (status, json.loads(body)) == ("200", {"status": "ok"})


def test_required_trust_with_a_garbage_file_stops_before_the_command_on_arm64(
    api_image: Image, docker_client: DockerClient, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("this is not a certificate\n")
    garbage.chmod(0o644)
    result = run_to_exit(
        docker_client,
        api_image.id,
        ["python3", "-c", "print('the command ran')"],
        environment={"REQUIRE_CA_TRUST": "true"},
        volumes={str(garbage): {"bind": f"{CA_DIR}/garbage.crt", "mode": "ro"}},
        platform=ARM64,
    )
    assert result.status == 1, result.report()
    assert "the command ran" not in result.stdout, result.report()
    assert f"rejected {CA_DIR}/garbage.crt: no PEM certificate" in result.stderr, result.report()
    assert "ensure_ca_trust: error: REQUIRE_CA_TRUST=true" in result.stderr, result.report()
