"""A base built on an upstream image pulled by digest from a real registry (Debian's
docker-registry of tests/infra/registry.sh, TLS with its own CA, basic auth), and a service on it.

The upstream image is our own Debian base, built by `./pants package` and pushed by the test
with a label unique to the run, so that its digest was never pulled before and the pull really
runs (its layers, shared with every earlier run, come from the blob cache). Credentials reach
the build only through a Docker config file the test writes; the registry's CA is a file of
the repository, named in `[esb-registries]`.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from esb_contract.image_spec import ConfigChanges
from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.oci import Descriptor, OciLayout, apply_config_changes, build_manifest
from imagetool.registry.credentials import DockerConfig
from imagetool.registry.push import push_image
from imagetool.registry.reference import Reference
from imagetool.registry.transport import RegistryClient, RegistryOptions
from imagetool.tarlayer import LayerMember, write_layer
from integration.checkouts import Checkout, ImageOutputs, ImageTarget, PantsRun, scratch_directory
from integration.prerequisites import unavailable

REGISTRY_VARIABLES = (
    "ESB_TEST_REGISTRY",
    "ESB_TEST_REGISTRY_CA",
    "ESB_TEST_REGISTRY_USER",
    "ESB_TEST_REGISTRY_PASSWORD",
)
REPOSITORY = "esb/upstream-base"
TAMPERED_REPOSITORY = "esb/upstream-base-tampered"
UPSTREAM_DIR = "upstream-base"
CA_IN_REPOSITORY = "certs/test-registry-ca.pem"
PYTHON_312_REPOSITORY = "esb/upstream-python312"
GOOD, TAMPERED, TAG_ONLY = "on-upstream", "on-tampered-upstream", "on-tag-only-upstream"
PYTHON_312 = "on-python312-upstream"


@dataclass(frozen=True)
class SharedRegistry:
    host: str
    ca: Path
    username: str
    password: str

    @property
    def storage(self) -> Path:
        """Where tests/infra/registry.sh keeps the registry's blobs: `data/` beside the CA."""
        return self.ca.parent / "data" / "docker" / "registry" / "v2"

    def blob_file(self, digest: str) -> Path:
        hex_digest = digest.split(":", 1)[1]
        return self.storage / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"


@dataclass(frozen=True)
class Pushed:
    reference: str
    """`registry/repository@sha256:…`"""
    digest: str
    layers: tuple[str, ...]
    """Layer digests, bottom first."""


@dataclass(frozen=True)
class UpstreamCheckout:
    checkout: Checkout
    registry: SharedRegistry
    upstream: Pushed
    tampered: Pushed
    python_312: Pushed
    tag: str
    service: ImageTarget
    """Built on `upstream-base:on-upstream`."""
    service_on_python_312: ImageTarget
    """Built on `upstream-base:on-python312-upstream`."""

    def base_target(self, name: str) -> ImageTarget:
        return ImageTarget(f"{UPSTREAM_DIR}:{name}", "esb_base_image", ())


@pytest.fixture(scope="module")
def test_registry() -> SharedRegistry:
    missing = [name for name in REGISTRY_VARIABLES if not os.environ.get(name)]
    if missing:
        unavailable(
            f"{', '.join(missing)} not set: tests/infra/registry.sh start, then "
            'eval "$(tests/infra/registry.sh env)"'
        )
    return SharedRegistry(
        host=os.environ["ESB_TEST_REGISTRY"],
        ca=Path(os.environ["ESB_TEST_REGISTRY_CA"]),
        username=os.environ["ESB_TEST_REGISTRY_USER"],
        password=os.environ["ESB_TEST_REGISTRY_PASSWORD"],
    )


def write_docker_config(path: Path, registry: SharedRegistry) -> Path:
    """A Docker config with the registry's credentials in `auths`, as `docker login` writes it."""
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    path.chmod(0o600)
    return path


def regular_file(path: str, data: bytes, mode: int = 0o644) -> LayerMember:
    info = tarfile.TarInfo(path)
    info.size, info.mode = len(data), mode
    return info, data


def symlink(path: str, target: str) -> LayerMember:
    info = tarfile.TarInfo(path)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info, None


def python_312_layer() -> list[LayerMember]:
    """What the official python images add: CPython under /usr/local (here a stand-in, never run:
    the build reads the image, it does not run it)."""
    return [
        regular_file("usr/local/bin/python3.12", b"#!/bin/sh\nexit 1\n", mode=0o755),
        symlink("usr/local/bin/python3", "python3.12"),
    ]


def variant_of(
    layout: Path,
    destination: Path,
    label: str,
    *,
    extra_members: Sequence[LayerMember] = (),
    env: Mapping[str, str] | None = None,
) -> Path:
    """A copy of the layout's image with a label of its own in its config (hence a digest never
    seen before), and, if given, one more layer of `extra_members` and more environment."""
    source = OciLayout(layout).load_image()
    target = OciLayout.create(destination)
    for layer in source.layers:
        target.import_blob(source.layout.blob_path(layer.digest), layer)
    layers = list(source.layers)
    config = copy.deepcopy(dict(source.config))
    changes = ConfigChanges(env=env or {}, labels={"org.example.esb-test-run": label})
    config["config"] = apply_config_changes(changes, config["config"])
    if extra_members:
        blob_path = destination.parent / f"{destination.name}-extra.tar.gz"
        blob = write_layer(extra_members, blob_path, mtime=0)
        layers.append(Descriptor(blob.media_type, blob.digest, blob.size))
        target.import_blob(blob_path, layers[-1])
        config["rootfs"]["diff_ids"].append(blob.diff_id)
        config["history"].append(
            {"created": config["created"], "created_by": "esb test: extra layer"}
        )
    config_descriptor = target.add_json_blob(CONFIG_MEDIA_TYPE, config)
    manifest = target.add_json_blob(
        source.manifest.media_type, build_manifest(config_descriptor, layers, {})
    )
    target.write_index([manifest])
    return destination


def push(
    registry: SharedRegistry, docker_config: Path, layout: Path, repository: str, tag: str
) -> Pushed:
    options = RegistryOptions(
        docker_config=DockerConfig.load(docker_config, helper_search_path=None),
        ca_bundles={registry.host: registry.ca},
    )
    with RegistryClient(options) as client:
        result = push_image(client, layout, Reference(registry.host, repository, tag))
    layers = tuple(layer.digest for layer in OciLayout(layout).load_image().layers)
    return Pushed(f"{registry.host}/{repository}@{result.digest}", result.digest, layers)


@pytest.fixture(scope="module")
def upstream_checkout(
    repo_root: Path, image_targets: list[ImageTarget], test_registry: SharedRegistry
) -> Iterator[UpstreamCheckout]:
    """A copy of the checkout whose first service builds on `upstream-base:on-upstream`, an
    `esb_base_image` on the Debian base that this copy built and the test pushed."""
    with scratch_directory("esb-integration-upstream-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        debian_base = next(target for target in image_targets if not target.is_service)
        built = checkout.pants("package", debian_base.address)
        assert built.returncode == 0, built.report()

        run = uuid.uuid4().hex
        docker_config = write_docker_config(scratch / "docker" / "config.json", test_registry)
        layout = checkout.outputs(debian_base).layout
        upstream = push(
            test_registry,
            docker_config,
            variant_of(layout, scratch / "upstream.oci", run),
            REPOSITORY,
            f"run-{run}",
        )
        tampered = push(
            test_registry,
            docker_config,
            variant_of(
                layout,
                scratch / "tampered.oci",
                run,
                extra_members=[regular_file("esb-test-run/unique.bin", os.urandom(64 * 1024))],
            ),
            TAMPERED_REPOSITORY,
            f"run-{run}",
        )
        python_312 = push(
            test_registry,
            docker_config,
            variant_of(
                layout,
                scratch / "python312.oci",
                run,
                extra_members=python_312_layer(),
                env={"PYTHON_VERSION": "3.12.1"},
            ),
            PYTHON_312_REPOSITORY,
            f"run-{run}",
        )

        # The base on the upstream image: the Debian base's scripts, no package lock.
        (checkout.root / UPSTREAM_DIR).mkdir()
        for script in ("ensure_ca_trust.sh", "entrypoint.sh"):
            shutil.copy2(
                checkout.root / debian_base.spec_path / script,
                checkout.root / UPSTREAM_DIR / script,
            )
        targets = {
            GOOD: upstream.reference,
            TAMPERED: tampered.reference,
            TAG_ONLY: f"{test_registry.host}/{REPOSITORY}:run-{run}",
            PYTHON_312: python_312.reference,
        }
        (checkout.root / UPSTREAM_DIR / "BUILD").write_text(
            "".join(
                f'esb_base_image(name="{name}", repository="esb/{name}", upstream="{reference}")\n'
                for name, reference in targets.items()
            )
        )
        (checkout.root / CA_IN_REPOSITORY).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(test_registry.ca, checkout.root / CA_IN_REPOSITORY)
        checkout.append(
            "pants.toml",
            f'\n[esb-registries]\ndocker_config = "{docker_config}"\n\n'
            f'[esb-registries.registries."{test_registry.host}"]\nca_bundle = "{CA_IN_REPOSITORY}"\n',
        )
        service, other_service = [target for target in image_targets if target.is_service][:2]
        for target, base in ((service, GOOD), (other_service, PYTHON_312)):
            checkout.substitute(
                f"{target.spec_path}/BUILD",
                r'\bbase\s*=\s*"[^"]*"',
                f'base="//{UPSTREAM_DIR}:{base}"',
            )
        yield UpstreamCheckout(
            checkout,
            test_registry,
            upstream,
            tampered,
            python_312,
            f"run-{run}",
            service,
            other_service,
        )


@pytest.fixture(scope="module")
def service_build(upstream_checkout: UpstreamCheckout) -> PantsRun:
    return upstream_checkout.checkout.pants(
        "package",
        upstream_checkout.service.address,
        upstream_checkout.service_on_python_312.address,
        f"{UPSTREAM_DIR}:{GOOD}",
    )


def test_a_service_builds_on_an_upstream_base_pulled_by_digest(
    upstream_checkout: UpstreamCheckout, service_build: PantsRun
) -> None:
    assert service_build.returncode == 0, service_build.report()
    checkout, upstream = upstream_checkout.checkout, upstream_checkout.upstream
    assert any(
        step.startswith(f"Pull {upstream.reference} (linux/amd64) for {UPSTREAM_DIR}:{GOOD}")
        for step in service_build.completed_steps
    ), service_build.report()

    base = ImageOutputs.of(upstream_checkout.base_target(GOOD), checkout.dist)
    service = checkout.outputs(upstream_checkout.service)
    # The chain: service → our base → the upstream image, each by digest.
    assert service.metadata["base_digest"] == base.digest
    assert base.metadata["base_digest"] == upstream.digest
    base_layers = [layer["digest"] for layer in base.metadata["layers"]]
    service_layers = [layer["digest"] for layer in service.metadata["layers"]]
    # Our base is the upstream's layers, then the service accounts and trust/tools layers.
    assert base_layers[: len(upstream.layers)] == list(upstream.layers)
    assert len(base_layers) == len(upstream.layers) + 2
    assert service_layers[: len(base_layers)] == base_layers


def test_the_upstream_base_keeps_its_packages_and_our_trust_contract(
    upstream_checkout: UpstreamCheckout, service_build: PantsRun
) -> None:
    assert service_build.returncode == 0, service_build.report()
    checkout = upstream_checkout.checkout
    service = checkout.outputs(upstream_checkout.service)
    inventory_file = service.metadata_file.with_name(
        service.metadata_file.name.replace(".image.json", ".inventory.json")
    )
    inventory = json.loads(inventory_file.read_text())
    # Debian's packages come from the upstream's layers, read for the inventory.
    assert {"python3", "libc6"} <= {entry["name"] for entry in inventory if entry["kind"] == "deb"}
    config = OciLayout(service.layout).load_image().config
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/entrypoint.sh"]
    assert config["config"]["Labels"][
        "org.example.esb-test-run"
    ] == upstream_checkout.tag.removeprefix("run-")


def layer_entries(layout: Path, digests: Sequence[str]) -> dict[str, tarfile.TarInfo]:
    """The entries of these layers of an image layout, by path."""
    entries = {}
    for digest in digests:
        with tarfile.open(OciLayout(layout).blob_path(digest)) as tar:
            entries.update({member.name: member for member in tar.getmembers()})
    return entries


def test_a_service_on_another_python_gets_a_venv_for_it_without_bytecode(
    upstream_checkout: UpstreamCheckout, service_build: PantsRun
) -> None:
    assert service_build.returncode == 0, service_build.report()
    python_312 = upstream_checkout.python_312
    assert (
        f"{UPSTREAM_DIR}:{PYTHON_312}: service venvs on {python_312.reference} ship without bytecode"
    ) in service_build.stderr, service_build.report()
    service = upstream_checkout.checkout.outputs(upstream_checkout.service_on_python_312)
    own_layers = [layer["digest"] for layer in service.metadata["layers"]][
        len(python_312.layers) + 2 :
    ]
    entries = layer_entries(service.layout, own_layers)
    assert entries[".venv/bin/python"].linkname == "/usr/local/bin/python3.12"
    venv_files = [name for name in entries if name.startswith(".venv/lib/")]
    assert venv_files and all(name.startswith(".venv/lib/python3.12") for name in venv_files)
    assert not [name for name in entries if name.startswith(".venv/") and name.endswith(".pyc")]


def test_a_tampered_blob_fails_the_build_naming_the_blob(
    upstream_checkout: UpstreamCheckout,
) -> None:
    registry, tampered = upstream_checkout.registry, upstream_checkout.tampered
    unique_layer = tampered.layers[-1]
    stored = registry.blob_file(unique_layer)
    assert stored.is_file(), f"tests/infra/registry.sh keeps blobs elsewhere than {stored}"
    original = stored.read_bytes()
    try:
        stored.write_bytes(bytes(byte ^ 0xFF for byte in original))
        run = upstream_checkout.checkout.pants("package", f"{UPSTREAM_DIR}:{TAMPERED}")
    finally:
        stored.write_bytes(original)

    assert run.returncode != 0, run.report()
    assert (
        f"Cannot pull the image of the `upstream` field of the target {UPSTREAM_DIR}:{TAMPERED} "
        f"({tampered.reference}, linux/amd64)"
    ) in run.stderr, run.report()
    assert (
        f"The blob {unique_layer} of {TAMPERED_REPOSITORY} from {registry.host} does not match its "
        f"digest: expected {unique_layer}"
    ) in run.stderr, run.report()
    assert "The registry's copy is corrupt or was altered; nothing was kept." in run.stderr
    target = upstream_checkout.base_target(TAMPERED)
    assert upstream_checkout.checkout.files_under_output_prefix(target) == []


def test_a_tag_only_reference_is_refused_with_the_pinning_message(
    upstream_checkout: UpstreamCheckout,
) -> None:
    run = upstream_checkout.checkout.pants("package", f"{UPSTREAM_DIR}:{TAG_ONLY}")
    assert run.returncode != 0, run.report()
    reference = f"{upstream_checkout.registry.host}/{REPOSITORY}:{upstream_checkout.tag}"
    assert (
        f"Cannot pull the image of the `upstream` field of the target {UPSTREAM_DIR}:{TAG_ONLY}"
    ) in run.stderr, run.report()
    assert (
        f"'{reference}' names no digest, and a build pulls only by digest (a tag can move)."
        in run.stderr
    )
    assert f"Pin it as `{reference}@sha256:<digest>`" in run.stderr, run.report()
