"""A node's pull of all N service images, ours against the Dockerfile images: both pushed to a
registry of the bench's own on loopback, then pulled one after the other by a fresh Docker engine
(a kubelet pulls serially by default), and one service started in another fresh engine."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from esb_bench.docker import DOCKER_TAG, DockerEngine
from esb_bench.monorepo import PROFILES_BY_NAME, Service
from esb_bench.ours import OurImage
from esb_bench.process import BenchError, log_tail, run, stop_process, wait_until

# One request of distribution's access log (Apache's combined format): method, path, status and
# the bytes of the response body.
ACCESS_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) (?P<size>\d+|-)'
)
BLOB_PATH = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
# The profile whose services answer on their own: a Starlette API whose /healthz needs no
# database, queue or other service (the others' runtimes wait for one).
ANSWERING_PROFILE = "http-api"
HEALTH_PATH = "/healthz"
# Namespaces of the two sides in the one registry, so that neither's pull finds the other's tags.
OURS_NAMESPACE = "ours"
DOCKERFILES_NAMESPACE = "dockerfiles"
# The fresh engines' bridge number: beside the harness's two build engines, which still run.
PULL_ENGINE_INDEX = 3
FIRST_ANSWER_TIMEOUT = 300
# The first answer is a few seconds, which other work on the machine easily shifts: a median of
# several runs, each in an engine of its own (the whole pull of N images runs once).
FIRST_ANSWER_RUNS = 3
# No proxy for loopback and the engines' bridges: the host's HTTP proxy settings must not apply.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Traffic:
    requests: int
    bytes_sent: int
    """Bytes of the registry's response bodies."""
    blobs: int
    """Blob downloads answered 200: layers and configs that crossed the wire."""


@dataclass(frozen=True)
class NodePull:
    """What one side's images cost a fresh node."""

    images: int
    seconds: float
    """Wall clock of `docker pull` of every service image, one after the other."""
    requests: int
    bytes_sent: int
    blobs: int
    disk_bytes: int
    """Disk blocks used by the engine's overlay2 directory after the pulls (`du`)."""
    first_answer_seconds: tuple[float, ...]
    """In another fresh engine each time: from the start of the answering service's pull to its
    container's first 200 on /healthz; one figure per run."""
    first_pull_seconds: tuple[float, ...]
    """Of each first answer, the `docker pull`: what the image's layout costs, apart from the
    container's start and the service's own start-up."""


@dataclass(frozen=True)
class PullResults:
    service: str
    """The service whose first answer is timed."""
    ours: NodePull
    dockerfiles: NodePull


def traffic(log_text: str) -> Traffic:
    """The requests, response bytes and blob downloads in an excerpt of the access log."""
    requests = bytes_sent = blobs = 0
    for line in log_text.splitlines():
        match = ACCESS_LINE.search(line)
        if match is None:
            continue
        requests += 1
        size = 0 if match["size"] == "-" else int(match["size"])
        bytes_sent += size
        if match["method"] == "GET" and match["status"] == "200" and BLOB_PATH.match(match["path"]):
            blobs += 1
    return Traffic(requests, bytes_sent, blobs)


def answering_service(services: tuple[Service, ...] | list[Service]) -> tuple[Service, str]:
    """The first service (by name) that answers HTTP without anything else running, and the port
    it listens on."""
    for service in sorted(services, key=lambda candidate: candidate.name):
        if service.profile == ANSWERING_PROFILE:
            port = PROFILES_BY_NAME[service.profile].ports[0]
            return service, port.split("/", 1)[0]
    raise BenchError(f"no service of the {ANSWERING_PROFILE} profile, which answers on its own")


def registry_config(root: Path, port: int) -> str:
    """distribution's configuration: plain HTTP on loopback (Docker treats 127.0.0.0/8 registries
    as insecure), no auth, and its access log on standard output."""
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: false\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        "  secret: esb-bench-registry\n"
    )


def reference(address: str, namespace: str, repository: str, tag: str) -> str:
    return f"{address}/{namespace}/{repository}:{tag}"


def du_bytes(output: str) -> int:
    """The size in `du -s -B1`'s output."""
    return int(output.split()[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with DIRECT.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Registry:
    """Debian's docker-registry on 127.0.0.1, its blobs and logs under `state`: requests and bytes
    come from its access log, an excerpt of which is the traffic of one step."""

    def __init__(self, state: Path):
        self.state = state
        self.access_log = state / "access.log"
        self.log = state / "registry.log"
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        registry = shutil.which("docker-registry")
        if not registry:
            raise BenchError("docker-registry is missing: apt-get install docker-registry")
        self.state.mkdir(parents=True)
        self.port = free_port()
        config = self.state / "config.yml"
        config.write_text(registry_config(self.state, self.port))
        with self.access_log.open("w") as out, self.log.open("w") as err:
            self.process = subprocess.Popen(
                [registry, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        process = self.process
        url = f"http://{self.address}/v2/"
        if not wait_until(lambda: process.poll() is not None or answers(url), seconds=30):
            raise BenchError(f"the registry did not answer:\n{log_tail(self.log)}")
        if process.poll() is not None:
            raise BenchError(f"the registry exited:\n{log_tail(self.log)}")

    def offset(self) -> int:
        """Where the access log ends now, once the lines of requests just answered are in."""
        size = -1
        while size != self.access_log.stat().st_size:
            size = self.access_log.stat().st_size
            time.sleep(0.2)
        return size

    def traffic_since(self, offset: int) -> Traffic:
        with self.access_log.open("rb") as log:
            log.seek(offset)
            return traffic(log.read(self.offset() - offset).decode(errors="replace"))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, seconds=30)
            self.process = None


def push_ours(registry: Registry, base: OurImage, images: list[OurImage]) -> list[str]:
    """Every image's OCI layout, base first, copied blob for blob by skopeo (which skips the blobs
    the registry has); returns the service images' references."""
    pushed = []
    for image in (base, *images):
        metadata = image.metadata
        tag = metadata["tags"][0]
        target = reference(registry.address, OURS_NAMESPACE, metadata["repository"], tag)
        layout = image.sibling(".oci")
        run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{layout}:{tag}",
                f"docker://{target}",
            ]
        )
        pushed.append(target)
    return pushed[1:]


def push_dockerfiles(
    registry: Registry, engine: DockerEngine, repositories: list[str]
) -> list[str]:
    """The Dockerfile images, as `docker push` from the engine that built them compresses them."""
    pushed = []
    for repository in repositories:
        target = reference(registry.address, DOCKERFILES_NAMESPACE, repository, DOCKER_TAG)
        engine.docker("tag", f"{repository}:{DOCKER_TAG}", target)
        engine.docker("push", "--quiet", target)
        pushed.append(target)
    return pushed


def container_address(engine: DockerEngine, container: str) -> str:
    return engine.docker(
        "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container
    )


class Node:
    """Fresh engines that pull from `registry`, one at a time, each removed after its step."""

    def __init__(self, registry: Registry, work: Path, logs: Path, index: int):
        self.registry = registry
        self.work = work
        self.logs = logs
        self.index = index

    def engine(self, name: str) -> DockerEngine:
        engine = DockerEngine(self.work / name, self.index, self.logs / f"dockerd-{name}.log")
        try:
            engine.start()
        except BaseException:
            # A start that failed half-way leaves the bridge and NAT rule it added.
            self.discard(engine)
            raise
        return engine

    def discard(self, engine: DockerEngine) -> None:
        engine.stop()
        shutil.rmtree(engine.state, ignore_errors=True)

    def pull_all(self, name: str, references: list[str]) -> tuple[float, Traffic, int]:
        """`docker pull` of each reference in turn: the seconds, the registry's traffic, and the
        disk that the engine's overlay2 directory takes afterwards."""
        engine = self.engine(name)
        try:
            offset = self.registry.offset()
            start = time.monotonic()
            for image in references:
                engine.docker("pull", "--quiet", image)
            seconds = time.monotonic() - start
            sent = self.registry.traffic_since(offset)
            overlay = engine.state / "data" / "overlay2"
            disk = du_bytes(run(["du", "-s", "-x", "--block-size=1", str(overlay)]))
            return seconds, sent, disk
        finally:
            self.discard(engine)

    def first_answer(self, name: str, image: str, port: str) -> tuple[float, float]:
        """From the start of `docker pull` of `image` to the first 200 of its container's
        /healthz, in a fresh engine; and of that, the pull."""
        engine = self.engine(name)
        try:
            start = time.monotonic()
            engine.docker("pull", "--quiet", image)
            pulled = time.monotonic() - start
            container = engine.docker("run", "--detach", image)
            url = f"http://{container_address(engine, container)}:{port}{HEALTH_PATH}"

            probes = 0

            def answered_or_exited() -> bool:
                nonlocal probes
                if answers(url):
                    return True
                probes += 1
                # A `docker inspect` about every second only: its process would compete with the
                # service's start-up for the cores.
                if probes % 10:
                    return False
                state = engine.docker("inspect", "--format", "{{.State.Running}}", container)
                return state != "true"

            if not wait_until(answered_or_exited, seconds=FIRST_ANSWER_TIMEOUT) or not answers(url):
                output = subprocess.run(
                    ["docker", "logs", "--tail", "40", container],
                    env=engine.env,
                    capture_output=True,
                    text=True,
                )
                raise BenchError(
                    f"{image} did not answer on {HEALTH_PATH}:\n{output.stdout}{output.stderr}"
                )
            return time.monotonic() - start, pulled
        finally:
            self.discard(engine)


def measure(
    work: Path,
    logs: Path,
    base: OurImage,
    images: dict[str, OurImage],
    services: tuple[Service, ...] | list[Service],
    build_engine: DockerEngine,
    index: int = PULL_ENGINE_INDEX,
) -> PullResults:
    """Pushes both sides' images to a registry of its own under `work` (the Dockerfile images from
    `build_engine`, which holds them), then measures each side's pull in fresh engines; stops and
    removes the registry and engines whatever happens."""
    service, port = answering_service(services)
    names = sorted(images)
    registry = Registry(work / "registry")
    try:
        registry.start()
        ours_refs = push_ours(registry, base, [images[name] for name in names])
        theirs_refs = push_dockerfiles(
            registry, build_engine, [images[name].metadata["repository"] for name in names]
        )
        node = Node(registry, work, logs, index)
        references = {"ours": ours_refs, "dockerfiles": theirs_refs}
        pulled = {side: node.pull_all(f"pull-{side}", refs) for side, refs in references.items()}
        first: dict[str, list[tuple[float, float]]] = {side: [] for side in references}
        for number in range(FIRST_ANSWER_RUNS):
            # Each side first in every other run: neither always starts on a machine just woken.
            order = list(references) if number % 2 == 0 else list(reversed(references))
            for side in order:
                image = references[side][names.index(service.name)]
                first[side].append(node.first_answer(f"first-{side}-{number}", image, port))
        sides = {
            side: NodePull(
                len(references[side]),
                seconds,
                sent.requests,
                sent.bytes_sent,
                sent.blobs,
                disk,
                tuple(answer for answer, _ in first[side]),
                tuple(pull for _, pull in first[side]),
            )
            for side, (seconds, sent, disk) in pulled.items()
        }
        return PullResults(service.name, sides["ours"], sides["dockerfiles"])
    finally:
        registry.stop()
        shutil.rmtree(registry.state, ignore_errors=True)
