"""One scale of the benchmark: a generated monorepo of N services, built by the three contenders
in turn for every scenario, each in a workspace and with caches of its own."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from esb_bench import monorepo as generator
from esb_bench import pull, sizes
from esb_bench.docker import (
    DockerBuild,
    DockerContender,
    DockerEngine,
    DockerRun,
    PantsDockerBackend,
    build_on_loaded_base,
    write_dockerfile_tree,
)
from esb_bench.monorepo import copy_checkout
from esb_bench.ours import (
    BASE_EDIT_FILE,
    OurImage,
    OurWorkspace,
    PantsRun,
    append_line,
    stop_pantsd,
)
from esb_bench.process import BenchError, progress, run, timed

UV_IN_IMAGE = "usr/local/bin/uv"
# Never copied into a workspace: build outputs, Pants' state, the test engines'.
NOT_COPIED = ("dist", ".pants.d", ".pids", ".ci-state")
DOCKER_CONTENDERS = ("docker build", "Pants docker_image")
FRESH_CLONE = "remote-cache-warm fresh clone"
FLOOR = "Pants' floor in that clone"
NOOP_FLOOR = "Pants' no-op floor: `list`"
SCENARIOS = (
    "cold",
    "no-op",
    NOOP_FLOOR,
    "one-file edit",
    "one lock changed",
    "base changed",
    FRESH_CLONE,
    FLOOR,
)
# Disk a scale takes at its peak: per service, two engines' images and build caches, ours' store,
# the cache server's copy and the fresh clone's store, the pull's registry and engine; plus the
# base's. Mostly the engines' since dist/ and the stores hold each shared layer once.
DISK_PER_SERVICE = 450_000_000
DISK_FIXED = 5_000_000_000
# Ours alone: the store, dist/ and the fresh clone's store hold each shared layer once.
DISK_PER_SERVICE_OURS_ALONE = 5_000_000


@dataclass
class ScaleResults:
    services: int
    distinct_locks: int
    ours: dict[str, list[PantsRun]] = field(default_factory=dict)
    docker: dict[str, dict[str, list[DockerRun]]] = field(default_factory=dict)
    """Per Docker contender, per scenario."""
    base_load_seconds: list[float] = field(default_factory=list)
    """`docker load` of our base into an engine: in the Docker contenders' cold and base runs."""
    registry_ours: sizes.RegistryBytes | None = None
    registry_dockerfiles: sizes.RegistryBytes | None = None
    node_pull: pull.PullResults | None = None
    """A fresh node's pull of all N images from a registry on loopback, each side's."""
    throughput: dict = field(default_factory=dict)
    dist_bytes: int = 0
    """What dist/ holds after ours' cold build."""
    pants_command: list[str] = field(default_factory=list)
    dockerfile: str = ""
    """The first service's Dockerfile, as built; empty for ours alone."""
    versions: dict[str, str] = field(default_factory=dict)
    """Of the tools on the Docker side: uv (the binary of our images), the Docker CLI and engine."""


def copy_workspace(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, symlinks=True, ignore=shutil.ignore_patterns(*NOT_COPIED))


class Scale:
    def __init__(
        self,
        count: int,
        work: Path,
        remote_cache: str,
        runs: int,
        base_runs: int,
        *,
        ours_alone: bool = False,
    ):
        self.count = count
        self.ours_alone = ours_alone
        """Only ours, at an N where the Docker contenders would take too long or too much disk."""
        self.work = work
        self.logs = work / "logs"
        self.remote_cache = remote_cache
        self.runs = runs
        self.base_runs = base_runs

    def measure(self) -> ScaleResults:
        self.work.mkdir(parents=True)
        free = shutil.disk_usage(self.work).free
        per_service = DISK_PER_SERVICE_OURS_ALONE if self.ours_alone else DISK_PER_SERVICE
        needed = per_service * self.count + DISK_FIXED
        if free < needed:
            raise BenchError(
                f"N={self.count} needs about {needed / 1e9:.0f} GB free under {self.work.parent}, which "
                f"has {free / 1e9:.0f} GB: free some, or leave out the largest N (--services) or "
                "measure it for ours alone (--ours-alone-above)."
            )
        workspace = self.work / "ours"
        copy_checkout(workspace)
        repo = generator.generate(workspace, self.count)
        pristine_services = self.work / "services"
        shutil.copytree(workspace / "services", pristine_services, symlinks=True)
        results = ScaleResults(self.count, len({service.profile for service in repo.services}))
        ours = OurWorkspace(workspace, self.work / "ours-caches", self.logs, self.remote_cache)
        results.pants_command = ours.command
        engines = (
            []
            if self.ours_alone
            else [
                DockerEngine(self.work / f"engine-{i}", i, self.logs / f"dockerd-{i}.log")
                for i in (1, 2)
            ]
        )
        pants_docker_tree = self.work / "dockerfiles-pants"
        clone = self.work / "a-fresh-clone-of-the-monorepo-at-another-path"
        try:
            progress(f"N={self.count}: ours, cold")
            results.ours["cold"] = [ours.package("cold")]
            base = ours.base()
            results.dist_bytes = sum(
                path.stat().st_size
                for path in (workspace / "dist").rglob("*")
                if path.is_file() and not path.is_symlink()
            )
            images = {service.name: ours.image(service.name) for service in repo.services}
            uv = self.work / "uv"
            uv.write_bytes(next(iter(images.values())).file_content(UV_IN_IMAGE))
            uv.chmod(0o755)
            trees = [] if self.ours_alone else [self.work / "dockerfiles-build", pants_docker_tree]
            for tree in trees:
                write_dockerfile_tree(pristine_services, tree, images, base, uv, workspace)
            edited = repo.services[0]
            if trees:
                dockerfile = trees[0] / "services" / edited.name / "Dockerfile"
                results.dockerfile = dockerfile.read_text()
            repositories = {name: image.metadata["repository"] for name, image in images.items()}
            for engine in engines:
                engine.start()
            results.versions = {"uv": run([str(uv), "--version"])}
            contenders: list[DockerContender] = []
            if engines:
                results.versions["Docker"] = engines[0].version()
                contenders = [
                    DockerBuild(engines[0], trees[0], repositories, self.logs),
                    PantsDockerBackend(
                        engines[1], trees[1], self.work / "pants-docker-caches", self.logs
                    ),
                ]
            results.docker = {contender.name: {} for contender in contenders}

            def docker_round(scenario: str, label: str, base_image: OurImage | None = None) -> None:
                for contender in contenders:
                    progress(f"N={self.count}: {contender.name}, {label}")
                    log = self.logs / f"load-base-{contender.name.replace(' ', '-')}-{label}.log"
                    measured, load = build_on_loaded_base(contender, label, base_image, log)
                    if base_image:
                        results.base_load_seconds.append(load)
                    results.docker[contender.name].setdefault(scenario, []).append(measured)

            def ours_round(scenario: str, label: str) -> None:
                progress(f"N={self.count}: ours, {label}")
                results.ours.setdefault(scenario, []).append(ours.package(label))

            docker_round("cold", "cold", base)
            if engines:
                # The cold build's images, as both sides have them now: the scenarios below switch
                # the first service to a lock that its code no longer matches, so that it would
                # not answer, and change the base.
                progress(f"N={self.count}: a fresh node's pull of all images")
                results.node_pull = pull.measure(
                    self.work / "pull", self.logs, base, images, repo.services, engines[0]
                )
            for number in range(1, self.runs + 1):
                ours_round("no-op", f"noop-{number}")
                docker_round("no-op", f"noop-{number}")
            for number in range(1, self.runs + 1):
                progress(f"N={self.count}: Pants' list of the same targets")
                results.ours.setdefault(NOOP_FLOOR, []).append(ours.list_targets(f"list-{number}"))
            edited_file = edited.edit_file.relative_to(workspace)
            for number in range(1, self.runs + 1):
                for root in (workspace, *trees):
                    append_line(root / edited_file, number)
                ours_round("one-file edit", f"edit-{number}")
                docker_round("one-file edit", f"edit-{number}")
            for number in range(1, self.runs + 1):
                edited = generator.change_lock(repo, edited, number)
                for tree in trees:
                    for name in ("pyproject.toml", "uv.lock"):
                        shutil.copy2(
                            edited.directory / name, tree / "services" / edited.name / name
                        )
                ours_round("one lock changed", f"lock-{number}")
                docker_round("one lock changed", f"lock-{number}")
            for number in range(1, self.base_runs + 1):
                append_line(workspace / BASE_EDIT_FILE, number)
                ours_round("base changed", f"base-{number}")
                docker_round("base changed", f"base-{number}", base)

            progress(f"N={self.count}: registry bytes")
            service_images = [images[name] for name in sorted(images)]
            results.registry_ours = sizes.ours(base, service_images)
            if engines:
                results.registry_dockerfiles = sizes.dockerfiles(
                    engines[0], base, sorted(repositories.values()), self.work
                )
            progress(f"N={self.count}: the machine's speed at the layer work")
            results.throughput = self.throughput(workspace, ours, [base, *service_images])
            # The engines' images take as much disk as a second copy of every build: gone before
            # the fresh clone's store and dist/ take theirs.
            for engine in engines:
                engine.stop()
                shutil.rmtree(engine.state)

            progress(f"N={self.count}: ours, remote-cache-warm fresh clone")
            copy_workspace(workspace, clone)
            fresh = OurWorkspace(
                clone, self.work / "fresh-clone-caches", self.logs, self.remote_cache
            )
            # Pants' own start-up in the same clone, the floor under any build of it.
            results.ours[FLOOR] = [fresh.floor("floor")]
            results.ours[FRESH_CLONE] = [fresh.package("remote-warm")]
        finally:
            for root in (workspace, pants_docker_tree, clone):
                stop_pantsd(root)
            for engine in engines:
                engine.stop()
        return results

    def throughput(self, workspace: Path, ours: OurWorkspace, images: list[OurImage]) -> dict:
        blobs: dict[str, Path] = {}
        for image in images:
            for layer in image.metadata["layers"]:
                blobs.setdefault(layer["digest"], image.blob(layer["digest"]))
        out = self.work / "throughput.json"
        command = [
            "./pants",
            *ours.options,
            "run",
            "bench/esb_bench/throughput.py",
            "--",
            f"--out={out}",
            *map(str, blobs.values()),
        ]
        timed(command, cwd=workspace, env=ours.env, log=self.logs / "throughput.log")
        return json.loads(out.read_text())
