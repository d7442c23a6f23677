"""Multi-platform builds: ours of amd64 alone and of amd64 and arm64 together, without emulation,
against `docker build` of each platform, whose arm64 RUN steps execute under QEMU user emulation."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from esb_bench import monorepo as generator
from esb_bench import sizes
from esb_bench.docker import (
    DockerBuild,
    DockerEngine,
    DockerRun,
    build_on_loaded_base,
    write_dockerfile_tree,
)
from esb_bench.harness import UV_IN_IMAGE, copy_workspace
from esb_bench.monorepo import copy_checkout
from esb_bench.ours import OurWorkspace, PantsRun, append_line, stop_pantsd
from esb_bench.process import BenchError, progress, run, timed

AMD64 = "linux/amd64"
ARM64 = "linux/arm64"
# Ours' two workspaces: the base as generated, and the base switched to both platforms.
AMD64_ONLY = "amd64"
BOTH = "amd64 and arm64"
SCENARIOS = ("cold", "one-file edit")
BASE_BUILD = "base/BUILD"
# The base's field that the platforms go after, as tests/integration/test_platforms.py adds them.
BASE_REPOSITORY_FIELD = 'repository="esb/service-base",'
# Engines of their own, on bridges and subnets apart from those of bench/run's.
ENGINE_INDEX = {AMD64: 3, ARM64: 4}


@dataclass
class PlatformsResults:
    services: int
    ours: dict[str, dict[str, PantsRun]] = field(default_factory=dict)
    """Per workspace (AMD64_ONLY, BOTH), per scenario."""
    docker: dict[str, dict[str, DockerRun]] = field(default_factory=dict)
    """Per platform, per scenario: the cold builds include the `docker load` of our base."""
    base_load_seconds: dict[str, float] = field(default_factory=dict)
    registry: dict[str, int] = field(default_factory=dict)
    """Per workspace, every distinct blob of all its images: layers, configs, manifests, and the
    indexes of the images of both platforms."""
    lock_command: list[str] = field(default_factory=list)
    pants_command: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    """Of the tools on the Docker side: uv (the binary of our images), the Docker CLI and engine."""


def architecture(platform: str) -> str:
    return platform.rsplit("/", 1)[1]


def with_platforms(build_file: str, platforms: tuple[str, ...]) -> str:
    """The base's BUILD file with `platforms` set on the base."""
    if build_file.count(BASE_REPOSITORY_FIELD) != 1:
        raise BenchError(
            f"{BASE_BUILD} has no single `{BASE_REPOSITORY_FIELD}` to add the platforms after"
        )
    listed = ", ".join(f'"{platform}"' for platform in platforms)
    return build_file.replace(
        BASE_REPOSITORY_FIELD, f"{BASE_REPOSITORY_FIELD}\n    platforms=[{listed}],"
    )


def lock_command(caches: Path) -> list[str]:
    """`esb-lock` of the base, with caches apart from the measured builds', which it would warm."""
    return [
        "./pants",
        "--no-pantsd",
        f"--local-store-dir={caches / 'lmdb_store'}",
        f"--named-caches-dir={caches / 'named_caches'}",
        "esb-lock",
        generator.BASE_TARGET,
    ]


class Platforms:
    def __init__(self, count: int, work: Path):
        self.count = count
        self.work = work
        self.logs = work / "logs"

    def measure(self) -> PlatformsResults:
        roots = {AMD64_ONLY: self.work / "amd64", BOTH: self.work / "amd64-arm64"}
        copy_checkout(roots[AMD64_ONLY])
        repo = generator.generate(roots[AMD64_ONLY], self.count)
        pristine_services = self.work / "services"
        shutil.copytree(roots[AMD64_ONLY] / "services", pristine_services, symlinks=True)
        copy_workspace(roots[AMD64_ONLY], roots[BOTH])
        base_build = roots[BOTH] / BASE_BUILD
        base_build.write_text(with_platforms(base_build.read_text(), (AMD64, ARM64)))
        results = PlatformsResults(self.count)
        results.lock_command = lock_command(self.work / "lock-caches")
        # Both locked at the same moment, so that their amd64 packages are the same.
        for name, root in roots.items():
            progress(f"N={self.count}: esb-lock of the base, {name}")
            log = self.logs / f"esb-lock-{slug(name)}.log"
            timed(results.lock_command, cwd=root, env=dict(os.environ), log=log)
        workspaces = {
            name: OurWorkspace(
                root, self.work / f"{root.name}-caches", self.logs, remote_cache=None
            )
            for name, root in roots.items()
        }
        results.pants_command = workspaces[BOTH].command
        engines = {
            platform: DockerEngine(
                self.work / f"engine-{architecture(platform)}",
                ENGINE_INDEX[platform],
                self.logs / f"dockerd-{architecture(platform)}.log",
            )
            for platform in (AMD64, ARM64)
        }
        try:
            for name, workspace in workspaces.items():
                progress(f"N={self.count}: ours, {name}, cold")
                results.ours[name] = {"cold": workspace.package(f"{slug(name)}-cold")}
            both = workspaces[BOTH]
            builds: dict[str, DockerBuild] = {}
            for platform, engine in engines.items():
                arch = architecture(platform)
                images = {s.name: both.image(s.name, platform) for s in repo.services}
                uv = self.work / f"uv-{arch}"
                uv.write_bytes(next(iter(images.values())).file_content(UV_IN_IMAGE))
                uv.chmod(0o755)
                tree = self.work / f"dockerfiles-{arch}"
                write_dockerfile_tree(
                    pristine_services, tree, images, both.base(platform), uv, roots[BOTH]
                )
                repositories = {
                    name: image.metadata["repository"] for name, image in images.items()
                }
                engine.start()
                builds[platform] = DockerBuild(engine, tree, repositories, self.logs, platform)
            # The amd64 binary, which runs here; the arm64 one is of the same release.
            results.versions["uv"] = run([str(self.work / "uv-amd64"), "--version"])
            results.versions["Docker"] = engines[AMD64].version()

            def docker_round(scenario: str, label: str, with_base: bool) -> None:
                for platform, build in builds.items():
                    arch = architecture(platform)
                    progress(f"N={self.count}: docker build --platform {platform}, {label}")
                    base = both.base(platform) if with_base else None
                    log = self.logs / f"load-base-{arch}-{label}.log"
                    measured, load = build_on_loaded_base(build, f"{arch}-{label}", base, log)
                    if base:
                        results.base_load_seconds[platform] = load
                    results.docker.setdefault(platform, {})[scenario] = measured

            docker_round("cold", "cold", with_base=True)
            edited_file = repo.services[0].edit_file.relative_to(roots[AMD64_ONLY])
            for root in (*roots.values(), *(build.root for build in builds.values())):
                append_line(root / edited_file, 1)
            for name, workspace in workspaces.items():
                progress(f"N={self.count}: ours, {name}, one-file edit")
                label = f"{slug(name)}-edit"
                results.ours[name]["one-file edit"] = workspace.package(label)
            docker_round("one-file edit", "edit", with_base=False)

            progress(f"N={self.count}: registry bytes")
            for name, workspace in workspaces.items():
                every_image = [workspace.base(), *(workspace.image(s.name) for s in repo.services)]
                results.registry[name] = sizes.stored(every_image)
        finally:
            for root in roots.values():
                stop_pantsd(root)
            for engine in engines.values():
                engine.stop()
        return results


def slug(name: str) -> str:
    """A workspace's name as it goes into file names: `amd64`, `amd64-and-arm64`."""
    return re.sub(r"\W+", "-", name)
