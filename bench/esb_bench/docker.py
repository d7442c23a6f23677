"""The contenders that build the seed's multi-stage Dockerfiles in a Docker engine: a `docker build`
per service, and Pants 2.17's own `docker_image` backend on the same Dockerfiles."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import string
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import tomllib

from esb_bench.ours import OurImage
from esb_bench.process import (
    BenchError,
    log_tail,
    run,
    settle,
    stop_process,
    timed,
    timed_with_retries,
    wait_until,
)
from esb_contract.image_spec import Platform
from imagetool.oci import OciLayout, write_docker_archive

DOCKERFILE_TEMPLATE = Path(__file__).parent / "service.Dockerfile.in"
DOCKER_TAG = "dockerfile"
# The builder stage gets the build host's CA bundle: this network's HTTPS proxy re-signs PyPI.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Labels are left out: ours name the base's digest, and they change neither sizes nor build times.
TRANSLATED_CONFIG = ("Env", "ExposedPorts", "WorkingDir", "User", "StopSignal", "Entrypoint", "Cmd")
# pants.toml sections the docker backend's workspace keeps: Pants' own bootstrap on this machine.
KEPT_PANTS_SECTIONS = ("python-bootstrap", "pex", "pex-cli", "subprocess-environment")


@dataclass(frozen=True)
class DockerRun:
    seconds: float
    work: int
    """Dockerfile instructions (FROM aside) executed rather than taken from the build cache."""
    instructions: int
    failed_seconds: tuple[float, ...] = ()
    """Attempts that failed on the network and were run again: in `seconds`, as in a CI job."""


def instructions_run(output: str) -> int:
    """The Dockerfile instructions, FROM aside, that classic-builder output shows executed rather
    than taken from the build cache."""
    lines = output.splitlines()
    steps = [line for line in lines if line.startswith("Step ") and " : FROM " not in line]
    return len(steps) - sum(1 for line in lines if line.strip() == "---> Using cache")


def instructions_in(tree: Path) -> int:
    """The instructions, FROM aside, of every Dockerfile in the tree: what a build of all
    services runs when nothing is cached (an instruction's continuation lines are indented)."""
    return sum(
        1
        for dockerfile in tree.glob("services/*/Dockerfile")
        for line in dockerfile.read_text().splitlines()
        if line[:1].isalpha() and not line.startswith("FROM ")
    )


class DockerEngine:
    """A dockerd of the bench's own: its data and exec roots under `state`, overlay2 (Docker's
    default driver), and a bridge of its own with a NAT rule, so that RUN steps reach PyPI as on a
    developer's machine. Everything it adds to the host (bridge, NAT rule, mounts) goes in stop().
    """

    def __init__(self, state: Path, index: int, log: Path):
        self.state = state
        self.log = log
        self.socket = state / "docker.sock"
        self.bridge = f"esbbench{index}"
        self.subnet = f"172.30.{index}.0/24"
        self.gateway = f"172.30.{index}.1/24"
        self.process: subprocess.Popen | None = None
        # Without DOCKER_BUILDKIT=0 the CLI wants the buildx plugin; 0 selects the classic builder.
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    @property
    def nat_rule(self) -> list[str]:
        return ["POSTROUTING", "-s", self.subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"]

    def start(self) -> None:
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise BenchError("dockerd is missing: apt-get install docker.io")
        self.state.mkdir(parents=True)
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", self.gateway, "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        run(["iptables", "-t", "nat", "-A", *self.nat_rule])
        # An empty daemon.json: a host's /etc/docker/daemon.json must not reach this engine.
        (self.state / "daemon.json").write_text("{}")
        with self.log.open("w") as out:
            process = subprocess.Popen(
                [
                    dockerd,
                    f"--config-file={self.state / 'daemon.json'}",
                    f"--host=unix://{self.socket}",
                    f"--data-root={self.state / 'data'}",
                    f"--exec-root={self.state / 'exec'}",
                    f"--pidfile={self.state / 'dockerd.pid'}",
                    f"--containerd-namespace={self.bridge}",
                    f"--containerd-plugins-namespace={self.bridge}-plugins",
                    f"--bridge={self.bridge}",
                    # The one NAT rule above is all the engine needs; its own would stay behind.
                    "--iptables=false",
                    "--ip6tables=false",
                    "--storage-driver=overlay2",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = process

        def answers_or_exited() -> bool:
            if process.poll() is not None:
                return True
            probe = ["docker", "version"]
            return subprocess.run(probe, env=self.env, capture_output=True).returncode == 0

        if not wait_until(answers_or_exited, seconds=60) or process.poll() is not None:
            raise BenchError(f"dockerd did not start:\n{log_tail(self.log)}")

    def stop(self) -> None:
        """Stops the engine and removes what it added to the host; stopping twice is harmless."""
        if self.process is not None:
            # dockerd stops its containerd before it exits.
            stop_process(self.process, seconds=60)
            self.process = None
        # dockerd leaves its network namespace bind-mounted under the exec root (and its data
        # root, when it dies): mount points cannot be deleted with the temporary directory.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mountpoint in sorted(
            (m for m in mounts if m.startswith(f"{self.state}/")), reverse=True
        ):
            run(["umount", mountpoint])
        subprocess.run(["iptables", "-t", "nat", "-D", *self.nat_rule], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def docker(self, *args: str) -> str:
        return run(["docker", *args], env=self.env)

    def load(self, image: OurImage, log: Path) -> float:
        """`docker load` of one of our images (of an image of several platforms, the image's
        platform) from the archive that the image tool writes from its OCI layout, as
        `pants run` loads it: the image's own blobs only, links followed."""

        def write_archive(out: BinaryIO) -> None:
            platform = Platform.parse(image.platform) if image.platform else None
            layout = OciLayout(image.sibling(".oci"))
            write_docker_archive(layout, out, platform=platform, repo_tags=[image.reference])

        return timed(["docker", "load"], cwd=self.state, env=self.env, log=log, feed=write_archive)

    def version(self) -> str:
        return self.docker(
            "version", "--format", "CLI {{.Client.Version}}, engine {{.Server.Version}}"
        )


def runtime_instructions(config: dict, base_config: dict) -> list[str]:
    """The instructions that give an image built `FROM` the base the runtime `config`."""
    untranslated = set(config) - set(TRANSLATED_CONFIG) - {"Labels"}
    if untranslated:
        raise BenchError(
            f"our image's configuration has {', '.join(sorted(untranslated))}, which bench/run "
            "does not translate into Dockerfile instructions yet: add them to runtime_instructions"
        )
    instructions = []
    for variable in config.get("Env", []):
        if variable not in base_config.get("Env", []):
            name, value = variable.split("=", 1)
            instructions.append(f"ENV {name}={json.dumps(value)}")
    instructions += [f"EXPOSE {port}" for port in config.get("ExposedPorts", {})]
    for key, instruction in (
        ("WorkingDir", "WORKDIR"),
        ("User", "USER"),
        ("StopSignal", "STOPSIGNAL"),
    ):
        if key in config and config[key] != base_config.get(key):
            instructions.append(f"{instruction} {config[key]}")
    for key, instruction in (("Entrypoint", "ENTRYPOINT"), ("Cmd", "CMD")):
        if key in config and config[key] != base_config.get(key):
            instructions.append(f"{instruction} {json.dumps(config[key])}")
    return instructions


def dockerfile_for(image: OurImage, base: OurImage) -> str:
    """The seed's builder/prod Dockerfile that builds the same image as `image`, FROM our base."""
    template = string.Template(DOCKERFILE_TEMPLATE.read_text())
    instructions = runtime_instructions(image.config, base.config)
    return template.substitute(base=base.reference, runtime_config="\n".join(instructions))


def docker_image_target(service: str, repository: str) -> str:
    return (
        f'files(name="context", sources=["pyproject.toml", "uv.lock", "src/**", "uv", "ca-bundle.crt"])\n\n'
        f"docker_image(\n"
        f'    name="{service}",\n'
        f'    source="Dockerfile",\n'
        f'    context_root="./",\n'
        f'    dependencies=[":context"],\n'
        f'    repository="{repository}",\n'
        f'    image_tags=["{DOCKER_TAG}"],\n'
        f")\n"
    )


def write_dockerfile_tree(
    services: Path,
    tree: Path,
    images: dict[str, OurImage],
    base: OurImage,
    uv: Path,
    checkout: Path,
) -> None:
    """A Pants workspace of the seed's Dockerfiles: per service, a copy of `services/<service>`
    (the seed's build context) with its Dockerfile, `uv` and the CA bundle, and a BUILD file of
    Pants' docker backend; `docker build` reads the same directories as contexts."""
    for service, image in images.items():
        context = tree / "services" / service
        shutil.copytree(services / service, context, symlinks=True)
        (context / "Dockerfile").write_text(dockerfile_for(image, base))
        (context / "BUILD").write_text(docker_image_target(service, image.metadata["repository"]))
        os.link(uv, context / "uv")
        shutil.copy2(HOST_CA_BUNDLE, context / "ca-bundle.crt")
    for launcher_file in ("pants", "3rdparty/pants/requirements.txt"):
        (tree / launcher_file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / launcher_file, tree / launcher_file)
    (tree / "pants.toml").write_text(docker_backend_config(checkout / "pants.toml"))


def docker_backend_config(our_config: Path) -> str:
    """pants.toml for Pants' docker backend alone, bootstrapped on this machine as ours is."""
    ours = tomllib.loads(our_config.read_text())
    settings: dict[str, dict] = {
        "GLOBAL": {
            "pants_version": ours["GLOBAL"]["pants_version"],
            "backend_packages": ["pants.backend.docker"],
            "ca_certs_path": ours["GLOBAL"]["ca_certs_path"],
        },
        # The Dockerfile parser of the backend is a PEX that needs an interpreter.
        "python": {"interpreter_constraints": ours["python"]["interpreter_constraints"]},
        **{section: ours[section] for section in KEPT_PANTS_SECTIONS},
        "docker": {"env_vars": ["DOCKER_HOST", "DOCKER_BUILDKIT=0"], "build_verbose": True},
    }
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


class DockerContender(Protocol):
    """A way to build the Dockerfiles of every service in a Docker engine: DockerBuild or
    PantsDockerBackend."""

    @property
    def name(self) -> str: ...

    @property
    def engine(self) -> DockerEngine: ...

    def build(self, label: str) -> DockerRun: ...


class DockerBuild:
    """`docker build` of every service's Dockerfile, as many at once as there are cores, as a CI
    script of the seed would run them; for `platform` when given (`docker build --platform`)."""

    name = "docker build"

    def __init__(
        self,
        engine: DockerEngine,
        tree: Path,
        repositories: dict[str, str],
        logs: Path,
        platform: str | None = None,
    ):
        self.engine = engine
        self.root = tree
        self.repositories = repositories
        self.logs = logs
        self.platform_options = ["--platform", platform] if platform else []

    def build(self, label: str) -> DockerRun:
        def build_one(service: str) -> tuple[int, tuple[float, ...]]:
            log = self.logs / f"docker-build-{label}" / f"{service}.log"
            context = self.root / "services" / service
            tag = f"{self.repositories[service]}:{DOCKER_TAG}"
            argv = ["docker", "build", *self.platform_options, "-t", tag, str(context)]
            attempts = timed_with_retries(argv, cwd=context, env=self.engine.env, log=log)
            return instructions_run(log.read_text()), attempts.failed_seconds

        start = os.times().elapsed
        with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
            built = list(pool.map(build_one, sorted(self.repositories)))
        elapsed = os.times().elapsed - start
        failed = tuple(seconds for _, failures in built for seconds in failures)
        return DockerRun(
            elapsed, sum(count for count, _ in built), instructions_in(self.root), failed
        )


class PantsDockerBackend:
    """`./pants package ::` with Pants 2.17's `docker_image` backend, in the same tree."""

    name = "Pants docker_image"

    def __init__(self, engine: DockerEngine, tree: Path, caches: Path, logs: Path):
        self.engine = engine
        self.root = tree
        self.logs = logs
        self.command = [
            "./pants",
            f"--local-store-dir={caches / 'lmdb_store'}",
            f"--named-caches-dir={caches / 'named_caches'}",
            "package",
            "::",
        ]

    def build(self, label: str) -> DockerRun:
        log = self.logs / f"pants-docker-{label}.log"
        attempts = timed_with_retries(self.command, cwd=self.root, env=self.engine.env, log=log)
        return DockerRun(
            attempts.seconds + sum(attempts.failed_seconds),
            instructions_run(log.read_text()),
            instructions_in(self.root),
            attempts.failed_seconds,
        )


def build_on_loaded_base(
    contender: DockerContender, label: str, base: OurImage | None, load_log: Path
) -> tuple[DockerRun, float]:
    """A build by `contender`, after the `docker load` of `base` into its engine when given, whose
    time the build's includes, as that of the pull it stands in for; and the load's time."""
    settle()
    load = contender.engine.load(base, load_log) if base else 0.0
    measured = contender.build(label)
    return dataclasses.replace(measured, seconds=measured.seconds + load), load
