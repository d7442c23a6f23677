"""Editing one service's source re-runs its assembly, which writes its app layer, and nothing
else."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from integration.checkouts import Checkout, ImageTarget, PantsRun, scratch_directory


@dataclass(frozen=True)
class IncrementalBuilds:
    edited: ImageTarget
    digests_before: dict[str, str]
    after_edit: PantsRun
    digests_after_edit: dict[str, str]
    unchanged: PantsRun
    digests_unchanged: dict[str, str]


@pytest.fixture(scope="module")
def incremental_builds(
    repo_root: Path, image_targets: list[ImageTarget]
) -> Iterator[IncrementalBuilds]:
    """Builds a copy of the checkout, edits a `.py` file of the first service and builds again,
    then builds a third time without a change."""
    with scratch_directory("esb-integration-incremental-") as directory:
        checkout = Checkout.copy_of(repo_root, directory / "checkout")
        initial = checkout.pants("package", "::")
        assert initial.returncode == 0, initial.report()
        digests_before = checkout.digests(image_targets)

        edited = next(target for target in image_targets if target.is_service)
        # Unique to this run: the process cache, shared by all runs, cannot hold the new layer.
        checkout.append(
            edited.source(".py"), f"\n# Edited by the incremental test: {uuid.uuid4()}\n"
        )
        after_edit = checkout.pants("package", "::")
        assert after_edit.returncode == 0, after_edit.report()
        digests_after_edit = checkout.digests(image_targets)

        unchanged = checkout.pants("package", "::")
        assert unchanged.returncode == 0, unchanged.report()
        yield IncrementalBuilds(
            edited,
            digests_before,
            after_edit,
            digests_after_edit,
            unchanged,
            checkout.digests(image_targets),
        )


def test_an_edit_changes_the_digest_of_that_service_only(
    incremental_builds: IncrementalBuilds,
) -> None:
    builds = incremental_builds
    address = builds.edited.address
    assert builds.digests_after_edit[address] != builds.digests_before[address]
    assert others(builds.digests_after_edit, address) == others(builds.digests_before, address)


def test_an_edit_reruns_only_that_assembly(incremental_builds: IncrementalBuilds) -> None:
    address = incremental_builds.edited.address
    assert incremental_builds.after_edit.completed_steps == [
        f"Assemble the image {address}"
    ], incremental_builds.after_edit.report()


def test_a_build_without_a_change_runs_nothing_and_keeps_the_digests(
    incremental_builds: IncrementalBuilds,
) -> None:
    builds = incremental_builds
    assert builds.unchanged.completed_steps == [], builds.unchanged.report()
    assert builds.digests_unchanged == builds.digests_after_edit


def others(digests: dict[str, str], address: str) -> dict[str, str]:
    """The digests of the images other than `address`."""
    return {other: digest for other, digest in digests.items() if other != address}
