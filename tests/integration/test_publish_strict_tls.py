"""`./pants publish` to a registry whose TLS certificate Docker checks: Debian's docker-registry
of tests/infra/registry.sh (htpasswd, TLS by a CA of its own) in a network namespace the test creates, reached
through a veth pair at a private address.

The Docker engine treats every registry on 127.0.0.0/8 as insecure and never checks its
certificate there, so the loopback registry of test_publish.py proves nothing about TLS on
Docker's side. At an address of its own the engine must refuse the registry until the test CA is
in `/etc/docker/certs.d/<host:port>/ca.crt` (dockerd reads it at each pull), and the image tool
must refuse it until `[esb-registries]` names the CA.

The test talks only to the namespace it creates, at a /30 of 10.213.0.0/16 that no interface of
the host uses and that the engine does not list as insecure. The registry, the veth pair, the
namespace and the certs.d entry are removed afterwards, whether or not the test passed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import docker
import pytest
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget, PantsRun, scratch_directory
from integration.prerequisites import unavailable
from integration.test_publish import ALIAS, PublishCheckout, assert_unknown_ca_refused
from integration.test_upstream_base import SharedRegistry

WORKER = ImageTarget("services/worker:worker", "esb_service_image", ())
NAMESPACE = "strict-tls"
"""Under which the images go on the registry."""
PRIVATE_RANGE = ipaddress.IPv4Network("10.213.0.0/16")
REGISTRY_PORT = 5000
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class NetworkNamespace:
    name: str
    host_interface: str
    """The host's end of the veth pair, at the first address of the /30."""
    address: ipaddress.IPv4Address
    """The namespace's end, the second address of the /30."""


def ip(*args: str) -> None:
    completed = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert completed.returncode == 0, f"`ip {' '.join(args)}` failed: {completed.stderr.strip()}"


def unused_subnet(excluded: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /30 of `PRIVATE_RANGE` that overlaps neither the host's addresses nor `excluded`, chosen
    at random: other test runs may have namespaces of their own at the same time."""
    listed = json.loads(
        subprocess.run(
            ["ip", "-json", "-4", "address", "show"], check=True, capture_output=True
        ).stdout
    )
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        *excluded,
        *(
            ipaddress.ip_interface(f"{entry['local']}/{entry['prefixlen']}").network
            for link in listed
            for entry in link.get("addr_info", ())
        ),
    ]
    subnets = list(PRIVATE_RANGE.subnets(new_prefix=30))
    # Out of 16384, a hundred random picks all taken means the range is as good as full.
    for subnet in random.sample(subnets, 100):
        if not any(subnet.overlaps(network) for network in taken):
            return subnet
    unavailable(
        f"no free /30 found in {PRIVATE_RANGE}: the host's addresses or the engine's insecure "
        f"registries cover it ({', '.join(map(str, taken))})"
    )


def insecure_networks(docker_client: DockerClient) -> list[ipaddress.IPv4Network]:
    """The networks whose registries the engine reaches without checking TLS."""
    cidrs = docker_client.info()["RegistryConfig"]["InsecureRegistryCIDRs"]
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    return [network for network in networks if isinstance(network, ipaddress.IPv4Network)]


@contextlib.contextmanager
def network_namespace(subnet: ipaddress.IPv4Network) -> Iterator[NetworkNamespace]:
    """A new network namespace joined to the host by a veth pair on `subnet`; gone afterwards."""
    token = secrets.token_hex(3)
    host_address, namespace_address = subnet.hosts()
    namespace = NetworkNamespace(f"esb-tls-{token}", f"esb-{token}-h", namespace_address)
    inner_interface = f"esb-{token}-n"
    with contextlib.ExitStack() as cleanup:
        ip("netns", "add", namespace.name)
        cleanup.callback(ip, "netns", "delete", namespace.name)
        ip("link", "add", namespace.host_interface, "type", "veth",
           "peer", "name", inner_interface, "netns", namespace.name)  # fmt: skip
        # Deleting one end of a veth pair deletes the other.
        cleanup.callback(ip, "link", "delete", namespace.host_interface)
        ip("address", "add", f"{host_address}/{subnet.prefixlen}", "dev", namespace.host_interface)
        ip("link", "set", namespace.host_interface, "up")
        ip("-netns", namespace.name, "address", "add",
           f"{namespace_address}/{subnet.prefixlen}", "dev", inner_interface)  # fmt: skip
        ip("-netns", namespace.name, "link", "set", inner_interface, "up")
        yield namespace


def registry_script(repo_root: Path, action: str, environment: dict[str, str]) -> str:
    """`tests/infra/registry.sh ACTION` with `environment` added; its standard output."""
    completed = subprocess.run(
        [str(repo_root / "tests" / "infra" / "registry.sh"), action],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, f"registry.sh {action} failed:\n{completed.stderr}"
    return completed.stdout


@pytest.fixture(scope="module")
def strict_registry(repo_root: Path, docker_client: DockerClient) -> Iterator[SharedRegistry]:
    """tests/infra/registry.sh's registry (Debian's docker-registry, htpasswd, TLS by a CA of its
    own) with a state directory of its own, alone in a network namespace, at an address the Docker
    engine does not treat as insecure."""
    if not shutil.which("ip"):
        unavailable("not installed: ip (apt-get install iproute2)")
    if os.geteuid() != 0:
        unavailable("creating a network namespace needs root")
    subnet = unused_subnet(insecure_networks(docker_client))
    with contextlib.ExitStack() as cleanup:
        directory = cleanup.enter_context(
            tempfile.TemporaryDirectory(prefix="esb-integration-strict-tls-")
        )
        namespace = cleanup.enter_context(network_namespace(subnet))
        environment = {
            "ESB_TEST_STATE": directory,
            "ESB_TEST_REGISTRY_HOST": str(namespace.address),
            "ESB_TEST_REGISTRY_NETNS": namespace.name,
            # The namespace is the test's own: every port in it is free.
            "ESB_TEST_REGISTRY_PORT": str(REGISTRY_PORT),
        }
        registry_script(repo_root, "start", environment)
        cleanup.callback(registry_script, repo_root, "stop", environment)
        exported = dict(
            shlex.split(line)[1].split("=", 1)
            for line in registry_script(repo_root, "env", environment).splitlines()
        )
        yield SharedRegistry(
            host=exported["ESB_TEST_REGISTRY"],
            ca=Path(exported["ESB_TEST_REGISTRY_CA"]),
            username=exported["ESB_TEST_REGISTRY_USER"],
            password=exported["ESB_TEST_REGISTRY_PASSWORD"],
        )


@contextlib.contextmanager
def trusted_by_the_engine(registry: SharedRegistry) -> Iterator[None]:
    """The registry's CA in the engine's certs.d, as an operator trusts a private registry."""
    created_certs_dir = not DOCKER_CERTS_DIR.exists()
    directory = DOCKER_CERTS_DIR / registry.host
    # Not exist_ok: a directory already there would be someone else's.
    directory.mkdir(parents=True)
    try:
        shutil.copyfile(registry.ca, directory / "ca.crt")
        yield
    finally:
        shutil.rmtree(directory)
        if created_certs_dir:
            # Another run may have put its own registry there meanwhile.
            with contextlib.suppress(OSError):
                DOCKER_CERTS_DIR.rmdir()


@pytest.fixture(scope="module")
def strict_checkout(repo_root: Path, strict_registry: SharedRegistry) -> Iterator[PublishCheckout]:
    """A copy of the checkout set up to publish to the strict registry, with its CA in
    `[esb-registries]`, after `package` of the one image the tests publish."""
    with scratch_directory("esb-integration-strict-tls-publish-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        publisher = PublishCheckout.set_up(checkout, strict_registry, NAMESPACE, scratch)
        built = checkout.pants("package", WORKER.address)
        assert built.returncode == 0, built.report()
        yield publisher


def test_publish_without_the_ca_bundle_is_refused_naming_the_registry_and_the_setting(
    strict_checkout: PublishCheckout,
) -> None:
    assert_unknown_ca_refused(strict_checkout, WORKER.address)


@pytest.fixture(scope="module")
def published(strict_checkout: PublishCheckout) -> PantsRun:
    return strict_checkout.publish(WORKER.address)


def test_docker_pulls_from_the_registry_only_once_it_trusts_the_ca(
    strict_checkout: PublishCheckout, published: PantsRun, docker_client: DockerClient
) -> None:
    assert published.returncode == 0, published.report()
    registry = strict_checkout.registry
    metadata = strict_checkout.checkout.outputs(WORKER).metadata
    name, digest = strict_checkout.name(metadata["repository"]), metadata["digest"]
    assert (
        f"✓ {name}:latest published to @{ALIAS} ({registry.host}/{NAMESPACE})." in published.stderr
    )
    auth = {"username": registry.username, "password": registry.password}

    with pytest.raises(docker.errors.APIError) as untrusted:
        docker_client.images.pull(name, tag=digest, auth_config=auth)
    # Unlike on loopback, the engine checks the certificate, and knows no CA that signed it.
    assert "x509: certificate signed by unknown authority" in str(untrusted.value), untrusted.value

    with trusted_by_the_engine(registry):
        pulled = docker_client.images.pull(name, tag=digest, auth_config=auth)
    try:
        assert pulled.id == metadata["config_digest"], pulled.attrs
        assert f"{name}@{digest}" in pulled.attrs["RepoDigests"], pulled.attrs
    finally:
        docker_client.images.remove(f"{name}@{digest}")
