"""Tests of docs/benchmarks.md's rendering: the section that bench/platforms writes between its
markers survives bench/run's rewrite of the whole file, and is replaced or appended as a whole;
the node's pull is shown side by side, with its ratios and where ours costs more."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb_bench.docker import DockerRun
from esb_bench.harness import DOCKER_CONTENDERS, FLOOR, FRESH_CLONE, NOOP_FLOOR, ScaleResults
from esb_bench.ours import PantsRun, Step
from esb_bench.process import BenchError
from esb_bench.pull import NodePull, PullResults
from esb_bench.report import (
    PLATFORMS_BEGIN,
    PLATFORMS_END,
    platforms_block,
    render,
    step_kind,
    with_platforms_block,
)
from esb_bench.sizes import RegistryBytes

BLOCK = f"{PLATFORMS_BEGIN}\n## Platforms: amd64 and arm64\n\n| a | b |\n{PLATFORMS_END}"


def measured_scale() -> ScaleResults:
    """The results of one scale with every figure that render() reads."""
    ours_run = PantsRun(
        seconds=40.0,
        startup_seconds=2.0,
        processes=(Step("Build the venv layer of services/svc-001:svc-001", 3.0, 10.0),),
        downloads=1,
        download_seconds=1.0,
    )
    docker_run = DockerRun(seconds=20.0, work=7, instructions=14)
    scenarios = ("cold", "no-op", "one-file edit")
    results = ScaleResults(services=1, distinct_locks=1)
    results.ours = {scenario: [ours_run] for scenario in scenarios}
    results.docker = {
        c: {scenario: [docker_run] for scenario in scenarios} for c in DOCKER_CONTENDERS
    }
    registry = RegistryBytes(base=50_000_000, total=80_000_000, image_median=70_000_000, services=1)
    results.registry_ours = results.registry_dockerfiles = registry
    side = NodePull(
        images=1,
        seconds=4.0,
        requests=10,
        bytes_sent=80_000_000,
        blobs=8,
        disk_bytes=200_000_000,
        first_answer_seconds=(5.0,),
        first_pull_seconds=(3.0,),
    )
    results.node_pull = PullResults("svc-001", side, side)
    results.throughput = {
        "layers": 4,
        "tar_bytes": 100_000_000,
        "raw_seconds": 1.0,
        "write_layer_seconds": 2.0,
    }
    results.pants_command = ["./pants", "package", "::"]
    results.dockerfile = "FROM esb/service-base:latest\n"
    return results


def rendered(previous: str) -> str:
    return render([measured_scale()], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), previous)


def test_render_carries_the_platforms_section_over() -> None:
    previous = f"# Benchmarks\n\nfigures of an older run\n\n{BLOCK}\n"

    text = rendered(previous)

    assert platforms_block(text) == BLOCK
    assert "figures of an older run" not in text
    assert text.startswith("# Benchmarks\n")


def test_render_without_a_platforms_section_writes_none() -> None:
    text = rendered("# Benchmarks\n\nfigures of an older run\n")

    assert platforms_block(text) is None
    assert PLATFORMS_BEGIN not in text


def test_a_platforms_section_replaces_only_the_old_one() -> None:
    before = f"# Benchmarks\n\nbefore\n\n{PLATFORMS_BEGIN}\nold figures\n{PLATFORMS_END}\n\nafter\n"

    text = with_platforms_block(before, BLOCK)

    assert text == f"# Benchmarks\n\nbefore\n\n{BLOCK}\n\nafter\n"


def test_a_platforms_section_is_appended_where_there_is_none() -> None:
    assert with_platforms_block("# Benchmarks\n\nfigures\n", BLOCK) == (
        f"# Benchmarks\n\nfigures\n\n{BLOCK}\n"
    )


def test_an_unterminated_section_is_no_section() -> None:
    assert platforms_block(f"# Benchmarks\n\n{PLATFORMS_BEGIN}\nno end\n") is None


def test_the_fresh_clone_is_shown_beside_pants_floor_in_that_clone() -> None:
    results = measured_scale()
    results.ours[FRESH_CLONE] = [
        PantsRun(
            seconds=25.0, startup_seconds=12.0, processes=(), downloads=1, download_seconds=0.2
        )
    ]
    results.ours[FLOOR] = [
        PantsRun(seconds=18.0, startup_seconds=18.0, processes=(), downloads=0, download_seconds=0)
    ]
    report = render([results], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")
    assert "| remote-cache-warm fresh clone | 25.0 | — | — | — | — |" in report
    assert f"| {FLOOR} | 18.0 | — | — | — | — |" in report
    assert (
        "- remote-cache-warm fresh clone at N = 1: ours 25.0 s, Pants' floor in that clone 18.0 s: "
        "at most the floor + 3 s — missed by 4.0 s."
    ) in report


def test_a_fresh_clone_within_3_s_of_the_floor_meets_its_target() -> None:
    results = measured_scale()
    results.ours[FRESH_CLONE] = [warm_run(20.5)]
    results.ours[FLOOR] = [warm_run(18.0)]
    report = render([results], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")
    assert "Pants' floor in that clone 18.0 s: at most the floor + 3 s — met." in report


def test_the_layer_processes_are_held_to_ten_times_the_write_floor() -> None:
    # The cold run's one layer process took 10 s, and one process writes the layers in 2 s.
    report = rendered("")
    assert (
        "- cold build's layer and image processes at N = 1: 5.0× the write floor "
        '("The physical limit"): at most 10× — met.'
    ) in report
    results = measured_scale()
    results.throughput["write_layer_seconds"] = 0.5
    report = render([results], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")
    assert "20.0× the write floor" in report and "at most 10× — missed by 2.0×." in report


def warm_run(seconds: float) -> PantsRun:
    return PantsRun(
        seconds=seconds, startup_seconds=0.1, processes=(), downloads=0, download_seconds=0
    )


def test_warm_runs_past_100_services_are_set_against_their_100_and_pants_floor() -> None:
    hundred, thousand = measured_scale(), measured_scale()
    hundred.services, thousand.services = 100, 1000
    thousand.docker = {}
    for results, noop, edit, floor in ((hundred, 0.4, 0.6, 0.2), (thousand, 2.4, 1.0, 1.2)):
        results.ours["no-op"] = [warm_run(noop)]
        results.ours["one-file edit"] = [warm_run(edit)]
        results.ours[NOOP_FLOOR] = [warm_run(floor)]
    report = render([thousand, hundred], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")
    assert (
        "- no-op at N = 1000: ours 2.4 s, 6.0× its 0.40 s at N = 100: at most 2× — missed by 3.0×."
        in report
    )
    assert (
        "- one-file edit at N = 1000: ours 1.0 s, 1.7× its 0.60 s at N = 100: at most 2× — met."
        in report
    )
    assert (
        "- Pants' no-op floor (`list` of the same targets) at N = 1000: 1.2 s, 6.0× its 0.20 s at N = 100. "
        "The no-op above that floor: 1.2 s, against 0.20 s at N = 100."
    ) in report
    assert f"| {NOOP_FLOOR} | 0.20 | — | — | — | — |" in report


def test_no_growth_section_without_a_scale_past_100() -> None:
    report = render([measured_scale()], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")
    assert "Warm runs past" not in report


def test_the_pull_section_gives_ratios_and_names_where_ours_costs_more() -> None:
    results = measured_scale()
    results.services = 10
    theirs = NodePull(
        images=10,
        seconds=8.0,
        requests=40,
        bytes_sent=100_000_000,
        blobs=30,
        disk_bytes=400_000_000,
        first_answer_seconds=(6.0, 5.0, 7.0),
        first_pull_seconds=(3.0, 2.5, 3.5),
    )
    ours = NodePull(
        images=10,
        seconds=4.0,
        requests=120,
        bytes_sent=50_000_000,
        blobs=90,
        # More, but by a ratio that rounds to 1.00: not named as costing more.
        disk_bytes=400_400_000,
        first_answer_seconds=(3.0, 4.0, 2.0),
        first_pull_seconds=(2.0, 2.5, 1.5),
    )
    results.node_pull = PullResults("svc-001", ours, theirs)

    report = render([results], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")

    assert "## A node's pull" in report
    assert "| pull of all N images, one after the other, s | 4.0 | 8.0 | 0.50 |" in report
    assert "| bytes the registry sent, MB | 50.0 | 100.0 | 0.50 |" in report
    assert "| requests | 120 | 40 | 3.00 |" in report
    assert (
        "| time to the first answer of one service, s | 3.0 (2.0–4.0) | 6.0 (5.0–7.0) | 0.50 |"
        in report
    )
    assert "| first answer's image pull, s | 2.0 (1.5–2.5) | 3.0 (2.5–3.5) | 0.67 |" in report
    assert (
        "Where ours costs the node more than the Dockerfile images: requests at N = 10 (3.00); "
        "blobs downloaded at N = 10 (3.00)." in report
    )


def test_a_pull_that_costs_ours_no_more_says_so() -> None:
    report = rendered("")

    assert (
        "Ours costs the node no more than the Dockerfile images in any of these figures." in report
    )


def ours_alone_scale(services: int) -> ScaleResults:
    """A scale measured for ours alone (`--ours-alone-above`): no Docker run, no Dockerfile
    registry bytes, no pull."""
    results = measured_scale()
    results.services = services
    results.docker = {}
    results.registry_dockerfiles = None
    results.node_pull = None
    results.dockerfile = ""
    return results


def test_a_scale_of_ours_alone_shows_dashes_for_the_docker_contenders() -> None:
    compared = measured_scale()
    compared.services = 100
    compared.dockerfile = "FROM esb/service-base:latest AS the-compared-one\n"

    report = render(
        [ours_alone_scale(1000), compared], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), ""
    )

    assert "At N = 1000, ours alone was measured (`--ours-alone-above`)" in report
    # The targets and the Dockerfile are the largest compared scale's.
    assert "## Targets, at N = 100\n" in report
    assert "FROM esb/service-base:latest AS the-compared-one" in report
    # Ours at N = 1000 in the scaling table, the Docker contenders' cells empty.
    assert "| 1000 | 40.0 | — | — | 40.0 | — | — | 40.0 | — | — |" in report
    assert "| cold | 40.0 | — | — | — | — |" in report
    # Registry bytes: ours only at N = 1000.
    assert "| 1000 | 1 | 80.0 | — | — | 30.0 | — | — | 70.0 | — |" in report
    # The charts and the pull stop at N = 100.
    assert 'x-axis "services (N)" [100]' in report
    assert "### N = 1000\n\nFirst answer" not in report
    assert "### N = 100\n\nFirst answer" in report


def test_a_run_of_ours_alone_at_every_n_is_refused() -> None:
    with pytest.raises(BenchError, match="no N was measured with the Docker contenders"):
        render([ours_alone_scale(1000)], {"CPU": "test"}, 1, 1, Path("/tmp/bench"), "")


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("Install anyio==4.16.0 into a layer", "Install … into a layer"),
        (
            "Check the native libraries of the venv of services/svc-001:svc-001",
            "Check the native libraries of the venv of …",
        ),
        ("Build the merged layer of anyio 4.16.0, idna 3.20, venv", "Build the merged layer of …"),
        ("Build the merged layer of cffi 2.1.1, venv", "Build the merged layer of …"),
    ],
)
def test_a_step_kind_leaves_out_what_its_step_names(description: str, kind: str) -> None:
    assert step_kind(description) == kind
