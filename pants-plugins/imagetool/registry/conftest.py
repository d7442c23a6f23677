"""Test helpers: a scripted HTTP server, small images built with the image tool, real registries.

Integration tests use the registry of `tests/infra/registry.sh` (TLS with its own CA, htpasswd),
named by the `ESB_TEST_REGISTRY*` variables, and throwaway plain-HTTP `docker-registry`s of their
own for what the shared one must not suffer (being killed, read-only mode). Without the
variables they are skipped, except under CI (`CI=true`), where that is a failure.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.oci import (
    MANIFEST_MEDIA_TYPE,
    ConfigChanges,
    Descriptor,
    OciLayout,
    Platform,
    build_image_config,
    canonical_json,
)
from imagetool.registry.credentials import DockerConfig
from imagetool.registry.transport import RegistryClient, RegistryOptions, RetryPolicy
from imagetool.tarlayer import write_layer

AMD64 = Platform("amd64")
# Short waits, so that tests of retries and of dead registries stay fast.
FAST_RETRIES = RetryPolicy(attempts=3, first_delay_seconds=0.01, max_delay_seconds=0.02)
REGISTRY_VARIABLES = (
    "ESB_TEST_REGISTRY",
    "ESB_TEST_REGISTRY_CA",
    "ESB_TEST_REGISTRY_USER",
    "ESB_TEST_REGISTRY_PASSWORD",
)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    """With the query, as sent."""
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


Respond = Callable[[Recorded], Answer]


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that answers with `respond` and records every request."""

    def __init__(self, respond: Respond) -> None:
        self.requests: list[Recorded] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Buffered, so that headers and body leave in one write (no delayed-ACK stalls).
            wbufsize = -1

            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(
                    self.command, self.path, dict(self.headers), self.rfile.read(length)
                )
                server.requests.append(recorded)
                answer = respond(recorded)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        # A short poll interval, so that stopping the server (after every test) is quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted_server() -> Iterator[Callable[[Respond], ScriptedServer]]:
    servers = []

    def start(respond: Respond) -> ScriptedServer:
        servers.append(ScriptedServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte: a hung registry,
    or a proxy whose upstream is gone."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections.append(connection)

    def stop(self) -> None:
        # Wakes the thread blocked in accept(), which closing alone does not.
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def registry_errors(status: int, code: str, message: str, **headers: str) -> Answer:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Answer(status, {"Content-Type": "application/json", **headers}, body)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_docker_config(path: Path, config: Mapping[str, object]) -> Path:
    path.write_text(json.dumps(config))
    return path


def auths_config(path: Path, registry: str, username: str, password: str) -> DockerConfig:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    write_docker_config(path, {"auths": {registry: {"auth": auth}}})
    return DockerConfig.load(path, helper_search_path=None)


# Images


@dataclass(frozen=True)
class SampleImage:
    layout: Path
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (*self.layers, self.config)


DOCKER_MEDIA_TYPES = {
    "manifest": "application/vnd.docker.distribution.manifest.v2+json",
    "config": "application/vnd.docker.container.image.v1+json",
    "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


def make_image(
    directory: Path,
    layer_contents: Sequence[bytes],
    *,
    platform: Platform = AMD64,
    docker_media_types: bool = False,
) -> SampleImage:
    """An OCI layout of one image whose layers each hold one file with the given contents,
    built with the image tool's own layer writer; with Docker's media types if asked."""
    layout = OciLayout.create(directory / "layout")
    layers, diff_ids = [], []
    for number, contents in enumerate(layer_contents):
        info = tarfile.TarInfo(f"layer-{number}")
        info.size, info.mode = len(contents), 0o644
        blob_path = directory / f"layer-{number}.tar.gz"
        blob = write_layer([(info, contents)], blob_path, mtime=0)
        media_type = DOCKER_MEDIA_TYPES["layer"] if docker_media_types else blob.media_type
        layers.append(Descriptor(media_type, blob.digest, blob.size))
        layout.import_blob(blob_path, layers[-1])
        diff_ids.append(blob.diff_id)
    config = layout.add_json_blob(
        DOCKER_MEDIA_TYPES["config"] if docker_media_types else CONFIG_MEDIA_TYPE,
        build_image_config(
            platform=platform,
            diff_ids=diff_ids,
            created_by=[f"test layer {n}" for n in range(len(diff_ids))],
            changes=ConfigChanges(),
            created=0,
        ),
    )
    manifest_type = DOCKER_MEDIA_TYPES["manifest"] if docker_media_types else MANIFEST_MEDIA_TYPE
    manifest = layout.add_json_blob(
        manifest_type,
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        },
    )
    layout.write_index([manifest])
    return SampleImage(layout.root, manifest, config, tuple(layers))


def image_index(manifests: Sequence[tuple[Descriptor, Platform]], media_type: str) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                Descriptor(d.media_type, d.digest, d.size, platform=p).to_json()
                for d, p in manifests
            ],
        }
    )


def unique_repository(name: str) -> str:
    """A repository no earlier run used: the shared registry keeps its content between runs."""
    return f"esb-test/{name}-{uuid.uuid4().hex[:12]}"


# Real registries


@dataclass(frozen=True)
class SharedRegistry:
    """The registry of tests/infra/registry.sh."""

    host: str
    ca: Path
    username: str
    password: str

    @property
    def storage(self) -> Path:
        """Where it keeps its blobs: tests/infra/registry.sh puts `data/` beside the CA."""
        return self.ca.parent / "data" / "docker" / "registry" / "v2"

    def options(self, docker_config: DockerConfig | None, **changes: object) -> RegistryOptions:
        settings: dict = {
            "docker_config": docker_config,
            "ca_bundles": {self.host: self.ca},
            "retry": FAST_RETRIES,
            "read_timeout_seconds": 10.0,
            **changes,
        }
        return RegistryOptions(**settings)


@pytest.fixture(scope="session")
def shared_registry() -> SharedRegistry:
    missing = [name for name in REGISTRY_VARIABLES if not os.environ.get(name)]
    if missing:
        message = (
            f"{', '.join(missing)} not set: start the test registry with `tests/infra/registry.sh "
            'start; eval "$(tests/infra/registry.sh env)"`'
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {message}.")
        pytest.skip(message)
    return SharedRegistry(
        host=os.environ["ESB_TEST_REGISTRY"],
        ca=Path(os.environ["ESB_TEST_REGISTRY_CA"]),
        username=os.environ["ESB_TEST_REGISTRY_USER"],
        password=os.environ["ESB_TEST_REGISTRY_PASSWORD"],
    )


@pytest.fixture
def shared_client(shared_registry: SharedRegistry, tmp_path: Path) -> Iterator[RegistryClient]:
    """A client of the shared registry, with its credentials in a Docker config's `auths`."""
    config = auths_config(
        tmp_path / "config.json",
        shared_registry.host,
        shared_registry.username,
        shared_registry.password,
    )
    with RegistryClient(shared_registry.options(config)) as client:
        yield client


class PrivateRegistry:
    """A `docker-registry` of the test's own: plain HTTP on 127.0.0.1, no auth, data in a temp dir."""

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        self._root = root
        self._config = root / "config.yml"
        self._config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"    readonly:\n      enabled: {'true' if read_only else 'false'}\n"
            # Fixed so that upload sessions survive a restart.
            f"http:\n  addr: {self.host}\n  secret: esb-private-test-registry\n"
        )
        self._process: subprocess.Popen | None = None

    def options(self, **changes: object) -> RegistryOptions:
        settings: dict = {
            "insecure_registries": frozenset({self.host}),
            "retry": FAST_RETRIES,
            "read_timeout_seconds": 10.0,
            **changes,
        }
        return RegistryOptions(**settings)

    def start(self) -> None:
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        with open(self._root / "registry.log", "ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(self._config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"docker-registry on {self.host} did not answer: see {self._root}/registry.log"
        )

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


StartPrivateRegistry = Callable[..., PrivateRegistry]


@pytest.fixture
def private_registry(
    shared_registry: SharedRegistry, tmp_path: Path
) -> Iterator[StartPrivateRegistry]:
    """Starts registries of the test's own (needing what the shared one needs: registry.sh
    installs docker-registry), and kills them at the end."""
    registries = []

    def start(name: str, *, read_only: bool = False) -> PrivateRegistry:
        root = tmp_path / name
        root.mkdir()
        registries.append(PrivateRegistry(root, read_only=read_only))
        registries[-1].start()
        return registries[-1]

    yield start
    for registry in registries:
        registry.kill()
