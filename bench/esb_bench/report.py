"""docs/benchmarks.md from the results of every scale."""

from __future__ import annotations

import os
import shlex
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from esb_bench.docker import DockerRun
from esb_bench.harness import (
    DOCKER_CONTENDERS,
    FLOOR,
    FRESH_CLONE,
    NOOP_FLOOR,
    SCENARIOS,
    ScaleResults,
)
from esb_bench.ours import IMAGE_SPECS, PantsRun
from esb_bench.process import BenchError
from esb_bench.pull import FIRST_ANSWER_RUNS, NodePull, PullResults
from esb_bench.sizes import RegistryBytes
from esb_contract.steps import is_image_step

MB = 1_000_000
# Warm runs past this N are held to at most this multiple of their figures at it.
GROWTH_REFERENCE = 100
GROWTH_TARGET = 2.0
# The warm-build targets, at the largest scale: no-op and one-file edit at most this fraction of
# the daemon build's time.
WARM_TARGET_RATIO = 0.1
# At the same scale: the fresh clone at most this many seconds above Pants' floor in that clone,
# and the cold build's layer and image processes at most this multiple of the write floor.
FRESH_CLONE_MARGIN = 3.0
LAYER_FLOOR_TARGET = 10.0
# Around the section that bench/platforms writes: render() carries it over from the file it
# replaces, and bench/platforms replaces only what lies between them.
PLATFORMS_BEGIN = "<!-- platforms:begin -->"
PLATFORMS_END = "<!-- platforms:end -->"


def seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return seconds(values[0])
    return f"{seconds(median(values))} ({seconds(min(values))}–{seconds(max(values))})"


def count_spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def megabytes(size: float) -> str:
    return f"{size / MB:.1f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table whose columns but the first are right-aligned figures."""
    return [
        "| " + " | ".join(header) + " |",
        "|---" + "|---:" * (len(header) - 1) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def shell_words(argv: list[str]) -> str:
    # shlex.quote would wrap Pants' list syntax, ['…'], in unreadable quote juggling.
    return " ".join(f'"{arg}"' if "'" in arg else shlex.quote(arg) for arg in argv)


class Figures:
    """The medians of one scale, per contender and scenario, None where a contender has no such
    scenario."""

    def __init__(self, results: ScaleResults):
        self.results = results

    def ours(self, scenario: str) -> list[PantsRun]:
        return self.results.ours.get(scenario, [])

    def times(self, contender: str, scenario: str) -> list[float]:
        if contender == "ours":
            return [run.seconds for run in self.ours(scenario)]
        return [run.seconds for run in self.results.docker.get(contender, {}).get(scenario, [])]

    def median(self, contender: str, scenario: str) -> float | None:
        values = self.times(contender, scenario)
        return median(values) if values else None

    def measured_median(self, contender: str, scenario: str) -> float:
        """The median of a scenario that every scale measures for the contender."""
        value = self.median(contender, scenario)
        if value is None:
            raise BenchError(
                f"N={self.results.services}: no {scenario} run of {contender} was measured"
            )
        return value

    def work(self, contender: str, scenario: str) -> str:
        if contender == "ours":
            runs = self.ours(scenario)
            return count_spread([run.work for run in runs]) if runs else "—"
        docker_runs = self.results.docker.get(contender, {}).get(scenario, [])
        if not docker_runs:
            return "—"
        work = count_spread([run.work for run in docker_runs])
        return f"{work} / {docker_runs[0].instructions}"


def registry_bytes(results: ScaleResults) -> tuple[RegistryBytes, RegistryBytes | None]:
    """Ours' registry bytes, which every measured scale has, and the Dockerfiles', which the
    scales with the Docker contenders have."""
    ours, theirs = results.registry_ours, results.registry_dockerfiles
    if ours is None or (theirs is None and compared(results)):
        raise BenchError(f"N={results.services}: the registry bytes were not measured")
    return ours, theirs


def compared(results: ScaleResults) -> bool:
    """Whether the scale measured the Docker contenders too, not ours alone."""
    return bool(results.docker)


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}" if ours is not None and theirs else "—"


def scenario_table(figures: Figures) -> list[str]:
    rows = []
    for scenario in SCENARIOS:
        ours = figures.median("ours", scenario)
        theirs = [figures.median(contender, scenario) for contender in DOCKER_CONTENDERS]
        rows.append(
            [
                scenario,
                spread(figures.times("ours", scenario)) if ours is not None else "—",
                *(
                    spread(figures.times(c, scenario)) if t is not None else "—"
                    for c, t in zip(DOCKER_CONTENDERS, theirs)
                ),
                *(ratio(ours, t) for t in theirs),
            ]
        )
    return table(
        ["Scenario", "ours", *DOCKER_CONTENDERS, *(f"ours / {c}" for c in DOCKER_CONTENDERS)], rows
    )


def work_table(figures: Figures) -> list[str]:
    return table(
        [
            "Scenario",
            "ours: processes run",
            *(f"{c}: instructions run / all" for c in DOCKER_CONTENDERS),
        ],
        [
            [s, figures.work("ours", s), *(figures.work(c, s) for c in DOCKER_CONTENDERS)]
            for s in SCENARIOS
        ],
    )


def xychart(
    title: str, counts: list[int], series: dict[str, list[float | None]], unit: str
) -> list[str]:
    """A Mermaid line chart (GitHub renders them): one line per contender over N."""
    top = max((v for values in series.values() for v in values if v is not None), default=1)
    lines = [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis \"services (N)\" [{', '.join(str(n) for n in counts)}]",
        f'    y-axis "{unit}" 0 --> {top * 1.1:.0f}',
    ]
    lines += [
        f"    line [{', '.join(f'{v:.1f}' if v is not None else '0' for v in values)}]"
        for values in series.values()
    ]
    lines.append("```")
    legend = ", ".join(f"line {i + 1}: {name}" for i, name in enumerate(series))
    return [*lines, "", f"Lines, in order: {legend}."]


def scaling_section(all_results: list[ScaleResults]) -> list[str]:
    figures = [Figures(r) for r in all_results]
    contenders = ("ours", *DOCKER_CONTENDERS)
    rows = []
    for f in figures:
        cells = [str(f.results.services)]
        for scenario in ("cold", "no-op", "one-file edit"):
            cells += [
                seconds(v) if (v := f.median(c, scenario)) is not None else "—" for c in contenders
            ]
        last = f.ours("base changed") or f.ours("one lock changed")
        rss = last[-1].pantsd_rss_mib if last else None
        cells.append(f"{rss:.0f}" if rss else "—")
        cells.append(f"{f.results.dist_bytes / 1e9:.2f}")
        rows.append(cells)
    header = ["N"]
    for scenario in ("cold", "no-op", "edit"):
        header += [f"{scenario}: {c}" for c in contenders]
    header += ["pantsd RSS, MiB", "`dist/`, GB"]
    lines = [*table(header, rows), ""]
    # A chart's lines have a point at every N: only the scales that measured every contender.
    both = [f for f in figures if compared(f.results)]
    for scenario, title in (
        ("cold", "Cold build of all images"),
        ("one-file edit", "One source file edited in one service"),
    ):
        series = {c: [f.median(c, scenario) for f in both] for c in contenders}
        lines += [*xychart(title, [f.results.services for f in both], series, "seconds"), ""]
    return lines


def growth_section(all_results: list[ScaleResults]) -> list[str]:
    """The warm runs past N = 100 against their N = 100 figures (goal: at most twice), beside
    Pants' own no-op floor over the same targets, which bounds how flat they can be."""
    by_count = {results.services: Figures(results) for results in all_results}
    reference = by_count.get(GROWTH_REFERENCE)
    larger = [n for n in by_count if n > GROWTH_REFERENCE]
    if reference is None or not larger:
        return []
    lines = [f"### Warm runs past N = {GROWTH_REFERENCE}", ""]
    for n in larger:
        figures = by_count[n]
        for scenario in ("no-op", "one-file edit"):
            then, now = reference.median("ours", scenario), figures.median("ours", scenario)
            if then is None or now is None:
                continue
            growth = now / then
            verdict = (
                "met" if growth <= GROWTH_TARGET else f"missed by {growth / GROWTH_TARGET:.1f}×"
            )
            lines.append(
                f"- {scenario} at N = {n}: ours {seconds(now)} s, {growth:.1f}× its {seconds(then)} s at "
                f"N = {GROWTH_REFERENCE}: at most {GROWTH_TARGET:.0f}× — {verdict}."
            )
        floor_then, floor_now = reference.median("ours", NOOP_FLOOR), figures.median(
            "ours", NOOP_FLOOR
        )
        noop_then, noop_now = reference.median("ours", "no-op"), figures.median("ours", "no-op")
        if floor_then and floor_now and noop_then and noop_now:
            lines.append(
                f"- Pants' no-op floor (`list` of the same targets) at N = {n}: {seconds(floor_now)} s, "
                f"{floor_now / floor_then:.1f}× its {seconds(floor_then)} s at N = {GROWTH_REFERENCE}. "
                f"The no-op above that floor: {seconds(noop_now - floor_now)} s, against "
                f"{seconds(noop_then - floor_then)} s at N = {GROWTH_REFERENCE}."
            )
    return [*lines, ""]


def registry_section(all_results: list[ScaleResults]) -> list[str]:
    rows = []
    for r in all_results:
        ours, theirs = registry_bytes(r)
        rows.append(
            [
                str(r.services),
                str(r.distinct_locks),
                megabytes(ours.total),
                megabytes(theirs.total) if theirs else "—",
                ratio(ours.total, theirs.total if theirs else None),
                megabytes(ours.per_service),
                megabytes(theirs.per_service) if theirs else "—",
                ratio(ours.per_service, theirs.per_service if theirs else None),
                megabytes(ours.image_median),
                megabytes(theirs.image_median) if theirs else "—",
            ]
        )
    return table(
        [
            "N",
            "distinct dependency profiles",
            "ours: all blobs, MB",
            "Dockerfiles: all blobs, MB",
            "ours / Dockerfiles",
            "ours: added per service, MB",
            "Dockerfiles: added per service, MB",
            "ours / Dockerfiles",
            "ours: median image, MB",
            "Dockerfiles: median image, MB",
        ],
        rows,
    )


def node_pull(results: ScaleResults) -> PullResults:
    """The fresh node's pull of both sides, which every scale with the Docker contenders has."""
    if results.node_pull is None:
        raise BenchError(f"N={results.services}: the node's pull was not measured")
    return results.node_pull


# What the pull section shows of each side, and how.
PULL_FIGURES: tuple[tuple[str, str], ...] = (
    ("pull of all N images, one after the other, s", "seconds"),
    ("bytes the registry sent, MB", "bytes_sent"),
    ("requests", "requests"),
    ("blobs downloaded", "blobs"),
    ("disk of the engine's overlay2 directory, MB", "disk_bytes"),
    ("time to the first answer of one service, s", "first_answer_seconds"),
    ("first answer's image pull, s", "first_pull_seconds"),
)


def pull_value(side: NodePull, field: str) -> float:
    """A figure of one side; of one measured several times (the first answer), the median."""
    value = getattr(side, field)
    return median(list(value)) if isinstance(value, tuple) else value


def pull_figure(side: NodePull, field: str) -> str:
    runs = getattr(side, field)
    if isinstance(runs, tuple):
        return spread(list(runs))
    value = pull_value(side, field)
    if field == "seconds":
        return seconds(value)
    if field in ("bytes_sent", "disk_bytes"):
        return megabytes(value)
    return str(value)


def pull_section(all_results: list[ScaleResults]) -> list[str]:
    lines: list[str] = []
    costlier = []
    for r in filter(compared, all_results):
        pulled = node_pull(r)
        rows = []
        for label, field in PULL_FIGURES:
            ours, theirs = pull_value(pulled.ours, field), pull_value(pulled.dockerfiles, field)
            shown = ratio(ours, theirs)
            rows.append(
                [
                    label,
                    pull_figure(pulled.ours, field),
                    pull_figure(pulled.dockerfiles, field),
                    shown,
                ]
            )
            # As the table shows it: a difference whose ratio prints as 1.00 is none.
            if theirs and float(shown) > 1:
                costlier.append(f"{label.split(',')[0]} at N = {r.services} ({shown})")
        lines += [
            f"### N = {r.services}",
            "",
            f"First answer: `{pulled.service}`'s `/healthz`.",
            "",
            *table(["", "ours", "Dockerfile images", "ours / Dockerfile images"], rows),
            "",
        ]
    if costlier:
        verdict = "Where ours costs the node more than the Dockerfile images: " + "; ".join(
            costlier
        )
    else:
        verdict = "Ours costs the node no more than the Dockerfile images in any of these figures"
    return [*lines, verdict + "."]


def retries_section(all_results: list[ScaleResults]) -> list[str]:
    rows = []
    for r in all_results:
        runs: dict[str, Mapping[str, Sequence[PantsRun | DockerRun]]] = {
            "ours": r.ours,
            **r.docker,
        }
        for contender, scenarios in runs.items():
            for scenario in SCENARIOS:
                for number, measured in enumerate(scenarios.get(scenario, []), start=1):
                    if measured.failed_seconds:
                        failed = ", ".join(seconds(s) for s in measured.failed_seconds)
                        rows.append(
                            [
                                str(r.services),
                                contender,
                                f"{scenario} ({number})",
                                failed,
                                seconds(measured.seconds),
                            ]
                        )
    if not rows:
        return ["No run failed on the network: none was run again."]
    return table(
        [
            "N",
            "contender",
            "scenario (run)",
            "failed attempts, s",
            "counted, s (failed attempts included)",
        ],
        rows,
    )


def layer_seconds(run: PantsRun) -> float:
    return sum(step.seconds for step in run.processes if is_image_step(step.description))


def over_write_floor(results: ScaleResults) -> float:
    """The cold build's layer and image processes, summed, over the time one process takes to
    write the same layers from memory."""
    return layer_seconds(results.ours["cold"][0]) / results.throughput["write_layer_seconds"]


def limit_section(all_results: list[ScaleResults]) -> list[str]:
    cores = len(os.sched_getaffinity(0))
    rows = []
    for r in all_results:
        t = r.throughput
        cold = r.ours["cold"][0]
        in_processes = layer_seconds(cold)
        rows.append(
            [
                str(r.services),
                str(t["layers"]),
                megabytes(t["tar_bytes"]),
                f"{t['tar_bytes'] / t['raw_seconds'] / MB:.0f}",
                f"{t['tar_bytes'] / t['write_layer_seconds'] / MB:.0f}",
                seconds(t["write_layer_seconds"] / cores),
                seconds(in_processes / cores),
                f"{over_write_floor(r):.1f}",
                seconds(cold.seconds),
            ]
        )
    return table(
        [
            "N",
            "distinct layers",
            "uncompressed, MB",
            "raw gzip+sha256, MB/s",
            "`write_layer`, MB/s",
            f"floor: `write_layer` on {cores} cores, s",
            f"layer and image processes on {cores} cores, s",
            "processes / floor",
            "whole cold build, s",
        ],
        rows,
    )


def step_kind(description: str) -> str:
    """A process's description with its target, path or distribution left out, so that the
    processes of all services add up to one row per kind of step."""

    def names_one(word: str) -> bool:
        return "/" in word or "==" in word or ":" in word.rstrip(":")

    head, of, names = description.partition(" of ")
    if of and "," in names:
        # A list of distributions (`name version, …`), as a merged layer's step names them.
        return f"{head} of …"
    return " ".join("…" if names_one(word) else word for word in description.split())


def breakdown_section(cold: PantsRun) -> list[str]:
    groups: dict[str, list[float]] = defaultdict(list)
    for step in cold.processes:
        groups[step_kind(step.description)].append(step.seconds)
    rows = [
        [
            "Start-up: pantsd, plugin loading, scheduler (to the first rule)",
            "1",
            seconds(cold.startup_seconds),
            seconds(cold.startup_seconds),
        ],
        [
            "Downloads by Pants (`.deb`s, uv), summed",
            str(cold.downloads),
            seconds(cold.download_seconds),
            "—",
        ],
    ]
    for kind, durations in sorted(groups.items(), key=lambda item: -sum(item[1])):
        rows.append([kind, str(len(durations)), seconds(sum(durations)), seconds(max(durations))])
    return table(
        ["Step (targets, paths and versions as …)", "processes", "seconds, summed", "longest"], rows
    )


def targets_section(largest: ScaleResults) -> list[str]:
    f = Figures(largest)
    docker = DOCKER_CONTENDERS[0]
    lines = []
    for scenario in ("no-op", "one-file edit"):
        ours, theirs = f.measured_median("ours", scenario), f.measured_median(docker, scenario)
        verdict = (
            "met"
            if ours <= WARM_TARGET_RATIO * theirs
            else f"missed: {ours / theirs:.2f} of it, {ours / (WARM_TARGET_RATIO * theirs):.1f}× the target"
        )
        lines.append(
            f"- {scenario} at N = {largest.services}: ours {seconds(ours)} s, `docker build` {seconds(theirs)} s: at most a tenth — {verdict}."
        )
    ours = f.measured_median("ours", "cold")
    for contender in DOCKER_CONTENDERS:
        theirs = f.measured_median(contender, "cold")
        verdict = "met" if ours < theirs else f"missed by {ours / theirs:.2f}×"
        lines.append(
            f"- cold at N = {largest.services}: ours {seconds(ours)} s, {contender} {seconds(theirs)} s: faster — {verdict}."
        )
    fresh, floor = f.median("ours", FRESH_CLONE), f.median("ours", FLOOR)
    if fresh is not None and floor is not None:
        above = fresh - floor
        verdict = (
            "met"
            if above <= FRESH_CLONE_MARGIN
            else f"missed by {seconds(above - FRESH_CLONE_MARGIN)} s"
        )
        lines.append(
            f"- remote-cache-warm fresh clone at N = {largest.services}: ours {seconds(fresh)} s, Pants' floor in that "
            f"clone {seconds(floor)} s: at most the floor + {FRESH_CLONE_MARGIN:.0f} s — {verdict}."
        )
    multiple = over_write_floor(largest)
    verdict = (
        "met"
        if multiple <= LAYER_FLOOR_TARGET
        else f"missed by {multiple / LAYER_FLOOR_TARGET:.1f}×"
    )
    lines.append(
        f"- cold build's layer and image processes at N = {largest.services}: {multiple:.1f}× the write floor "
        f'("The physical limit"): at most {LAYER_FLOOR_TARGET:.0f}× — {verdict}.'
    )
    ours_registry, theirs_registry = registry_bytes(largest)
    if theirs_registry is None:
        raise BenchError(f"N={largest.services}: the Dockerfile images were not measured")
    ours_bytes, theirs_bytes = ours_registry.per_service, theirs_registry.per_service
    verdict = "met" if ours_bytes <= theirs_bytes else f"missed by {ours_bytes / theirs_bytes:.2f}×"
    lines.append(
        f"- registry bytes each service image adds at N = {largest.services}: ours {megabytes(ours_bytes)} MB, Dockerfiles {megabytes(theirs_bytes)} MB: no larger — {verdict}."
    )
    return lines


def platforms_block(text: str) -> str | None:
    """The platforms section of `text`, its markers included, if it has one."""
    begin = text.find(PLATFORMS_BEGIN)
    end = text.find(PLATFORMS_END, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin : end + len(PLATFORMS_END)]


def with_platforms_block(text: str, block: str) -> str:
    """`text` with its platforms section replaced by `block`, or `block` appended if it has none."""
    current = platforms_block(text)
    if current is not None:
        return text.replace(current, block, 1)
    return f"{text.rstrip()}\n\n{block}\n"


def render(
    all_results: list[ScaleResults],
    machine: dict[str, str],
    runs: int,
    base_runs: int,
    work: Path,
    previous: str,
) -> str:
    """The whole of docs/benchmarks.md, with the platforms section of `previous` (the file's
    text before) carried over."""
    all_results = sorted(all_results, key=lambda results: results.services)
    largest = all_results[-1]
    # The targets and the Dockerfile shown are those of the largest N with the Docker contenders.
    compared_results = [results for results in all_results if compared(results)]
    if not compared_results:
        raise BenchError("no N was measured with the Docker contenders: nothing to compare")
    largest_compared = compared_results[-1]
    alone = [str(results.services) for results in all_results if not compared(results)]
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run` ([bench/README.md](../bench/README.md)): every figure comes from one run on the machine "
        "described below. Re-run it rather than editing this file.",
        "",
        "Three ways to build the service images of a generated ESB monorepo (`bench/esb_bench/monorepo.py`: N services "
        "on the shared base, each with its own `uv.lock` drawn from realistic dependency profiles that overlap, several "
        "with compiled wheels) after the base:",
        "",
        f"- **ours**: `./pants package {' '.join(IMAGE_SPECS)}` (the monorepo's images) with this plugin: no daemon, every layer a cached Pants process, the CI "
        "profile's remote cache (BuildGrid on loopback) read and written. It also builds the base from its pinned "
        "`.deb`s.",
        "- **docker build**: the seed's builder/prod multi-stage Dockerfile of each service (written from "
        "[bench/esb_bench/service.Dockerfile.in](../bench/esb_bench/service.Dockerfile.in) with our image's runtime "
        "configuration), built by the classic builder (`DOCKER_BUILDKIT=0`: the CLI here has no buildx), two at a time "
        "(one per core), in a Docker engine of its own (overlay2).",
        "- **Pants docker_image**: Pants 2.17's own `docker_image` backend building the same Dockerfiles, in another "
        "engine of its own.",
        "",
        "Docker Hub is unreachable here, so the Dockerfiles start `FROM` **our** base, `docker load`ed into each engine "
        "(counted, as the pull it stands in for): the Docker contenders never build a base.",
        "",
        *(
            [
                f"At N = {', '.join(alone)}, ours alone was measured (`--ours-alone-above`): the Docker contenders "
                "would take hours and tens of GB there. Their cells are —, and the charts, the registry comparison "
                "and the node's pull stop at the largest N that has them.",
                "",
            ]
            if alone
            else []
        ),
        "## Machine",
        "",
        *table(["Fact", "Value"], [[k, v] for k, v in machine.items()]),
        "",
        f"## Targets, at N = {largest_compared.services}",
        "",
        *targets_section(largest_compared),
        "",
        "## Scaling with N",
        "",
        "Medians in seconds; pantsd's resident memory after the last run of ours; the bytes `dist/` holds after "
        "ours' cold build: each distinct blob once in `dist/blobs/sha256/`, each image's layout a link to it and "
        "its few JSON files.",
        "",
        *scaling_section(all_results),
        *growth_section(all_results),
        "## Every scenario, per N",
        "",
        f"Wall-clock seconds, median (min–max) of {runs} runs for no-op, edit and lock, {base_runs} for the base, one "
        "for cold and the fresh clone; the ratios divide the medians.",
        "",
        "- **cold**: a fresh copy (ours: a copy of the checkout with the generated services; empty Pants store and named "
        "caches, an empty remote cache; Docker: a new engine holding only our loaded base).",
        "- **no-op**: the same command again; pantsd warm.",
        f"- **{NOOP_FLOOR}**: `./pants list {' '.join(IMAGE_SPECS)}` with the same options, pantsd warm, after "
        "the no-ops: Pants' own work for a run over the same targets (their BUILD files, the specs), which runs "
        "no rule of ours.",
        "- **one-file edit**: a new comment line appended to one module of the first service, a different line each run.",
        "- **one lock changed**: the first service switches to another dependency profile (its `pyproject.toml` and "
        "`uv.lock`), a different one each run.",
        "- **base changed**: a comment line appended to the base's `ensure_ca_trust.sh` (a file of its trust layer); "
        "ours rebuilds the base, the Docker contenders load that new base and rebuild on it.",
        "- **remote-cache-warm fresh clone** (ours only; the classic builder has no remote cache): another copy of the "
        "workspace at another path, empty local caches, no pantsd, the remote cache that the runs above wrote.",
        "- **Pants' floor in that clone**: `./pants --no-pantsd --version` in the same fresh clone, just before its "
        "build: Pants' own start-up, under which no build of the clone can go. The goal for the fresh clone is this "
        "floor + 3 s.",
        "",
    ]
    for results in all_results:
        figures = Figures(results)
        lines += [
            f"### N = {results.services}",
            "",
            *scenario_table(figures),
            "",
            *work_table(figures),
            "",
        ]
    lines += [
        "### Runs retried after a network failure",
        "",
        "A build that fails on the network (a PyPI download timing out, a connection reset: what uv prints for "
        "them) is run again, up to three attempts; a `docker build` only for the service that failed. Its time counts "
        "the failed attempts, as a CI job's would: a retry favours no contender.",
        "",
        *retries_section(all_results),
        "",
        "## Registry bytes",
        "",
        "MB = 10⁶ bytes. What a registry stores for the base and all N service images, counting each distinct blob "
        "once; *added per service*: (all − base) / N. Ours: the blob sizes of `.image.json` (gzip by ISA-L, level 1). "
        "Dockerfiles': one `docker save` of all N images, each distinct layer gzipped at level 6 (Docker's default).",
        "",
        *registry_section(all_results),
        "",
        "## A node's pull",
        "",
        "What a node without any of the images pays to pull all N service images: both sides pushed to a registry "
        "of the bench's own on loopback (Debian's `docker-registry`, distribution 2.8, plain HTTP), ours from their "
        "OCI layouts by `skopeo copy` with the base's image, the Dockerfile images by `docker push` from the engine "
        "that built them. A fresh Docker engine (overlay2) then runs `docker pull` of every service image, one after "
        "the other as a kubelet does by default (dockerd's default of 3 concurrent layer downloads per image), once "
        "per side. Bytes and requests come from the registry's access log (response "
        "bodies); *blobs downloaded* are the blob GETs answered 200; the disk is `du` of the engine's "
        "`data-root/overlay2` directory (blocks used) after the pulls. The first answer, in another fresh engine: "
        "from the start of `docker pull` of the first service of the `http-api` profile (a Starlette API whose "
        "`/healthz` needs no database or other service) to the first 200 of its container's `/healthz`, "
        f"`docker run` included; median (min–max) of {FIRST_ANSWER_RUNS} runs, each in an engine of its own, the sides taking turns "
        "to go first; *first answer's image pull*: the `docker pull` within it, which the image's layers decide, "
        "apart from the container's start and the service's own. The first answer pulls one image into an empty "
        "engine, so it does not depend on N. MB = 10⁶ "
        "bytes; ratios of medians; below 1, ours costs less.",
        "",
        *pull_section(all_results),
        "",
        "## The physical limit",
        "",
        "Every distinct layer of the images of the cold build, re-written in one process from memory by the image "
        "tool's `write_layer` (tar + ISA-L gzip + both sha256s, `bench/esb_bench/throughput.py`), and compressed and "
        "hashed raw (no tar); divided over the cores, that is the floor under the cold build's layer work. The cold "
        "build also downloads, installs wheels, starts Pants and runs checks.",
        "",
        *limit_section(all_results),
        "",
        f"## Where the cold build spends its time, N = {largest.services}",
        "",
        f"From Pants' workunit log ({seconds(largest.ours['cold'][0].seconds)} s wall clock).",
        "",
        *breakdown_section(largest.ours["cold"][0]),
        "",
        "## Commands",
        "",
        "Ours, in the workspace, with the bench's own cache directories under `$BENCH` (its temporary directory):",
        "",
        "```bash",
        "ESB_REMOTE_CACHE=grpc://127.0.0.1:PORT "
        + shell_words(largest.pants_command).replace(str(work), "$BENCH"),
        "```",
        "",
        "docker build, per service, two at a time: `DOCKER_BUILDKIT=0 docker build -t esb-bench/SERVICE:dockerfile "
        "services/SERVICE`, the context holding the service's directory, its Dockerfile, `uv` (from our image, so both "
        "sides ship the same binary) and the host's CA bundle (this network's HTTPS proxy re-signs PyPI). Pants "
        "docker_image: `./pants package ::` in the same tree with a `docker_image` and a `files` target per service.",
        "",
        f"The Dockerfile of the first service at N = {largest_compared.services}, as built:",
        "",
        "```dockerfile",
        largest_compared.dockerfile.rstrip("\n"),
        "```",
        "",
    ]
    text = "\n".join(lines)
    block = platforms_block(previous)
    return text if block is None else with_platforms_block(text, block)
