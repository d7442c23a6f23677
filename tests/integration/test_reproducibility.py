"""Same inputs, same digests: from another checkout path, with nothing cached, on another day,
for the example and for real projects."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.checkouts import Checkout, ImageTarget, image_steps
from integration.fake_clock import (
    date_seen_by_sandboxed_processes,
    fake_clock_wrapper,
    missing_requirement,
)
from integration.prerequisites import require
from integration.real_projects import (
    REAL_TARGETS,
    add_real_services,
    add_real_workspace,
    copy_locks,
    lock_as_of_exclude_newer,
    sdist_cache,
)

# Years before the build machines' real clock, and within the validity of the certificates that
# the downloads from PyPI and Debian present.
FAKE_MOMENT = "2021-06-01 10:00:00"
UV_LAYER_STEP = "Build the uv layer ("
VENV_LAYER_STEP = "Build the venv layer ("


@pytest.fixture
def fake_clock(scratch: Path) -> tuple[str, ...]:
    """A command prefix: the command, and every process it starts, see FAKE_MOMENT as now."""
    require(missing_requirement())
    mountpoint = scratch / "fake-clock"
    mountpoint.mkdir()
    return fake_clock_wrapper(FAKE_MOMENT, mountpoint)


def clean_build_options(caches: Path) -> tuple[str, ...]:
    """Pants options for a build that reuses nothing: no process cache, and a store (downloads,
    files, process results) and named caches (pip's and pex's) of its own."""
    return (
        "--no-local-cache",
        f"--local-store-dir={caches / 'store'}",
        f"--named-caches-dir={caches / 'named'}",
    )


def test_clean_builds_at_two_paths_on_two_clocks_give_identical_digests(
    repo_root: Path, image_targets: list[ImageTarget], scratch: Path, fake_clock: tuple[str, ...]
) -> None:
    # Paths of different lengths: tar headers and padding would differ if a path leaked in.
    first = Checkout.copy_of(repo_root, scratch / "first" / "checkout")
    second = Checkout.copy_of(
        repo_root, scratch / "second" / "a-checkout-at-a-longer-path" / "checkout"
    )
    # Besides the example, real projects as their authors publish them: own projects, sdists
    # built into wheels, a workspace. Locked once, as a repository commits its locks.
    for checkout in (first, second):
        add_real_services(checkout, sdist_cache())
        add_real_workspace(checkout, sdist_cache())
    lock_as_of_exclude_newer(first, *REAL_TARGETS)
    copy_locks(first, second)
    every_target = [*image_targets, *(ImageTarget.service(t) for t in REAL_TARGETS)]
    first_options = clean_build_options(scratch / "first" / "caches")
    second_options = clean_build_options(scratch / "second" / "caches")

    first_run = first.pants(*first_options, "package", "::")
    assert first_run.returncode == 0, first_run.report()
    second_run = second.pants(*second_options, "package", "::", wrapper=fake_clock)
    assert second_run.returncode == 0, second_run.report()

    for checkout, run in ((first, first_run), (second, second_run)):
        missing = image_steps(checkout, image_targets) - set(run.completed_steps)
        assert not missing, f"steps that did not run: {sorted(missing)}\n{run.report()}"
        for prefix in (UV_LAYER_STEP, VENV_LAYER_STEP):
            assert any(step.startswith(prefix) for step in run.completed_steps), run.report()
    # The clock the second build's processes saw: a process run the same way, in the same place.
    fake_date = FAKE_MOMENT.split()[0]
    assert date_seen_by_sandboxed_processes(second, second_options, fake_clock) == fake_date
    assert second.digests(every_target) == first.digests(every_target), differing_layers(
        first, second, every_target
    )


def layer_history(checkout: Checkout, target: ImageTarget) -> list[tuple[str, str]]:
    """Each layer of the image's manifest, bottom first, with the history entry that made it."""
    outputs = checkout.outputs(target)
    history = outputs.config["history"]
    made_by = [e.get("created_by", "") for e in history if not e.get("empty_layer")]
    return list(zip((layer["digest"] for layer in outputs.metadata["layers"]), made_by))


def differing_layers(first: Checkout, second: Checkout, targets: list[ImageTarget]) -> str:
    """Which layers of the images whose digests differ are not the same in both checkouts."""
    lines = []
    for target in targets:
        ours, theirs = layer_history(first, target), layer_history(second, target)
        if ours != theirs:
            changed = [made_by for (a, made_by), (b, _) in zip(ours, theirs) if a != b]
            lines.append(
                f"{target.address}: {len(ours)} and {len(theirs)} layers; differ: {changed}"
            )
    return "\n".join(lines) or "the same layers: the configs or manifests differ"
