"""The section "Platforms: amd64 and arm64" of docs/benchmarks.md, between its markers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from esb_bench.docker import DockerRun
from esb_bench.ours import IMAGE_SPECS, PantsRun
from esb_bench.platforms import AMD64, AMD64_ONLY, ARM64, BOTH, SCENARIOS, PlatformsResults
from esb_bench.report import (
    PLATFORMS_BEGIN,
    PLATFORMS_END,
    megabytes,
    ratio,
    seconds,
    shell_words,
    table,
)


def times_table(results: PlatformsResults) -> list[str]:
    """Per platform built, ours against `docker build`, cold and after the one-file edit."""
    ours, docker = results.ours, results.docker
    rows: list[list[str]] = []
    for label, ours_seconds, docker_seconds in (
        (
            "amd64",
            lambda s: ours[AMD64_ONLY][s].seconds,
            lambda s: docker[AMD64][s].seconds,
        ),
        (
            "arm64 (ours: added to amd64; docker build: under QEMU)",
            lambda s: ours[BOTH][s].seconds - ours[AMD64_ONLY][s].seconds,
            lambda s: docker[ARM64][s].seconds,
        ),
        (
            "amd64 and arm64 (docker build: the two added)",
            lambda s: ours[BOTH][s].seconds,
            lambda s: docker[AMD64][s].seconds + docker[ARM64][s].seconds,
        ),
    ):
        row = [label]
        for scenario in SCENARIOS:
            mine, theirs = ours_seconds(scenario), docker_seconds(scenario)
            row += [seconds(mine), seconds(theirs), ratio(mine, theirs)]
        rows.append(row)
    header = ["Images built"]
    for scenario in SCENARIOS:
        header += [f"{scenario}: ours", f"{scenario}: docker build", "ours / docker build"]
    return table(header, rows)


def work_table(results: PlatformsResults) -> list[str]:
    rows = [
        [f"ours, {name}", *(str(results.ours[name][s].work) for s in SCENARIOS)]
        for name in (AMD64_ONLY, BOTH)
    ]
    rows += [
        [
            f"docker build --platform {platform}",
            *(
                f"{results.docker[platform][s].work} / {results.docker[platform][s].instructions}"
                for s in SCENARIOS
            ),
        ]
        for platform in (AMD64, ARM64)
    ]
    return table(
        ["Build", *(f"{s}: processes (ours) or instructions (docker) run" for s in SCENARIOS)],
        rows,
    )


def registry_table(results: PlatformsResults) -> list[str]:
    amd64, both = results.registry[AMD64_ONLY], results.registry[BOTH]
    return table(
        ["Images", "all blobs, MB", "/ amd64 only"],
        [
            ["amd64 only", megabytes(amd64), "1.00"],
            ["amd64 and arm64, as indexes", megabytes(both), ratio(both, amd64)],
        ],
    )


def retried(results: PlatformsResults) -> str:
    runs: list[tuple[str, str, PantsRun | DockerRun]] = [
        (f"ours, {name}", scenario, run)
        for name, scenarios in results.ours.items()
        for scenario, run in scenarios.items()
    ]
    runs += [
        (f"docker build --platform {platform}", scenario, run)
        for platform, scenarios in results.docker.items()
        for scenario, run in scenarios.items()
    ]
    failed = [
        f"{who}, {scenario}: failed attempts of {', '.join(seconds(s) for s in run.failed_seconds)} s"
        for who, scenario, run in runs
        if run.failed_seconds
    ]
    if not failed:
        return "No build failed on the network: none was run again."
    return (
        "Run again after a network failure, the failed attempts counted: " + "; ".join(failed) + "."
    )


def commands(results: PlatformsResults, work: Path) -> list[str]:
    def in_bench(argv: Sequence[str]) -> str:
        return shell_words(list(argv)).replace(str(work), "$BENCH")

    return [
        "```bash",
        "ESB_TEST_STATE=$BENCH tests/infra/qemu.sh start   # and stop, at the end",
        "# In each workspace, untimed:",
        in_bench(results.lock_command),
        "# Timed, in each workspace with caches of its own (here the two platforms'):",
        in_bench(results.pants_command),
        "# Timed, per service, two at a time, in an engine per platform:",
        "DOCKER_BUILDKIT=0 docker build --platform linux/arm64 -t esb-bench/SERVICE:dockerfile "
        "services/SERVICE",
        "```",
    ]


def render(results: PlatformsResults, machine: dict[str, str], work: Path) -> str:
    """The section, its markers included."""
    loads = ", ".join(
        f"{platform} {seconds(load)} s" for platform, load in results.base_load_seconds.items()
    )
    lines = [
        PLATFORMS_BEGIN,
        "## Platforms: amd64 and arm64",
        "",
        "Written by `bench/platforms` ([bench/README.md](../bench/README.md)), apart from `bench/run`, whose "
        "report keeps this section as it is: every figure of it comes from one run on the machine below.",
        "",
        f"A generated monorepo of N = {results.services} services (as above), its base switched to "
        '`platforms=["linux/amd64", "linux/arm64"]` and locked with `esb-lock`; the same monorepo with the base as '
        "generated (amd64 only), locked at the same moment, for reference. Each build in a workspace and caches of "
        "its own, no remote cache:",
        "",
        f"- **ours**: `./pants package {' '.join(IMAGE_SPECS)}`, cold and after a comment line appended to one module of the first "
        "service, in each workspace. One `package` builds both platforms: the arm64 base from arm64 `.deb`s, "
        "the venvs from aarch64 wheels, nothing emulated. The arm64 row gives what the second platform adds to "
        "the amd64 build (both platforms less amd64 alone).",
        "- **docker build**: the same Dockerfiles as `bench/run`'s (see its Commands), built by the classic builder two at a time with "
        "`--platform` in an engine per platform, `FROM` that platform's image of our base (`docker load`ed, "
        f"counted in the cold builds: {loads}), with that platform's `uv` from our images. The arm64 build's "
        "RUN steps (uv, the bytecode compilation) execute under QEMU user emulation (`tests/infra/qemu.sh`).",
        "",
        "Wall-clock seconds, one run each; the ratios divide ours by docker build's.",
        "",
        *times_table(results),
        "",
        *work_table(results),
        "",
        retried(results),
        "",
        "Registry bytes (MB = 10⁶ bytes), counted as above from the blob sizes of `.image.json`, each distinct "
        "blob once, with the manifests, and the indexes of the images of both platforms:",
        "",
        *registry_table(results),
        "",
        "### Machine",
        "",
        *table(["Fact", "Value"], [[k, v] for k, v in machine.items()]),
        "",
        "### Commands",
        "",
        "With the bench's temporary directory as `$BENCH`:",
        "",
        *commands(results, work),
        PLATFORMS_END,
    ]
    return "\n".join(lines)
