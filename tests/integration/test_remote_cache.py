"""The CI profile's remote cache: a clean workspace gets every image step from it, to package or
to publish, and a build without the cache server still succeeds.

Workspace A (a fresh copy of the checkout, empty local caches) builds everything and writes to the
REAPI cache at ESB_TEST_REMOTE_CACHE (tests/infra/buildgrid.sh); workspace B (another copy, at a
longer path, with empty local caches of its own) builds from it. Workspace C (another copy, with
empty local caches of its own, set up to publish as test_publish.py's copy is) publishes from it to
the registry of tests/infra/registry.sh, under a namespace of its own so that its repositories
start empty.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from integration.checkouts import Checkout, ImageTarget, PantsRun, image_steps, scratch_directory
from integration.prerequisites import unavailable
from integration.test_publish import PUSHED_LINE, PublishCheckout

# `test_registry` is the fixture, shared with the upstream base's and the publish tests.
from integration.test_upstream_base import SharedRegistry, test_registry  # noqa: F401

# Pants reads this file after pants.toml: the profile under test, as CI uses it.
CI_PROFILE = "--pants-config-files=pants.ci.toml"
# The variable pants.ci.toml reads the cache's address from.
ADDRESS_VARIABLE = "ESB_REMOTE_CACHE"
# The steps that image_steps leaves out, whose descriptions name a platform.
PLATFORM_STEP_PREFIXES = ("Build the uv layer (", "Build the venv layer (")
CACHE_READ_WARNING = "[WARN] Failed to read from remote cache"


@pytest.fixture(scope="module")
def remote_cache() -> str:
    """The address of the cache server that tests/run starts, once it accepts connections."""
    address = os.environ.get("ESB_TEST_REMOTE_CACHE")
    if not address:
        unavailable(
            "ESB_TEST_REMOTE_CACHE is not set: tests/infra/buildgrid.sh start, then "
            'eval "$(tests/infra/buildgrid.sh env)"'
        )
    location = urlsplit(address)
    if location.port is None:
        unavailable(f"ESB_TEST_REMOTE_CACHE={address} names no port")
    try:
        socket.create_connection((location.hostname, location.port), timeout=5).close()
    except OSError as error:
        unavailable(f"no cache server answers at ESB_TEST_REMOTE_CACHE={address}: {error}")
    return address


@dataclass(frozen=True)
class Workspace:
    checkout: Checkout
    caches: Path

    def pants_with_cache(self, address: str, *args: str) -> PantsRun:
        """`./pants ARGS` with the CI profile pointed at `address`, and local caches of its own
        that the first run finds empty."""
        return self.checkout.pants(
            CI_PROFILE,
            f"--local-store-dir={self.caches / 'store'}",
            f"--named-caches-dir={self.caches / 'named'}",
            *args,
            wrapper=("env", f"{ADDRESS_VARIABLE}={address}"),
        )


@dataclass(frozen=True)
class CacheBuilds:
    writer: Workspace
    writer_run: PantsRun
    reader: Workspace
    reader_run: PantsRun
    # Keys of this module's processes only: entries that an earlier run left in the server
    # cannot serve the writer, and the reader can hit only what the writer wrote.
    namespace_option: str


@pytest.fixture(scope="module")
def cache_builds(repo_root: Path, remote_cache: str) -> Iterator[CacheBuilds]:
    """`package ::` in A, writing to the cache, then in B, reading from it."""
    with scratch_directory("esb-integration-remote-cache-") as root:
        writer = Workspace(Checkout.copy_of(repo_root, root / "a" / "checkout"), root / "a-caches")
        # Paths of different lengths: a path in a process's key would make every lookup miss.
        reader = Workspace(
            Checkout.copy_of(repo_root, root / "b" / "a-workspace-at-a-longer-path" / "checkout"),
            root / "b-caches",
        )
        namespace_option = f"--process-execution-cache-namespace=remote-cache-test-{uuid.uuid4()}"
        writer_run = writer.pants_with_cache(remote_cache, namespace_option, "package", "::")
        assert writer_run.returncode == 0, writer_run.report()
        reader_run = reader.pants_with_cache(remote_cache, namespace_option, "package", "::")
        assert reader_run.returncode == 0, reader_run.report()
        yield CacheBuilds(writer, writer_run, reader, reader_run, namespace_option)


@dataclass(frozen=True)
class CachePublish:
    publisher: PublishCheckout
    run: PantsRun


@pytest.fixture(scope="module")
def cache_publish(
    repo_root: Path, remote_cache: str, cache_builds: CacheBuilds, test_registry: SharedRegistry
) -> Iterator[CachePublish]:
    """`publish ::` in C, reading what A wrote to the cache."""
    with scratch_directory("esb-integration-remote-cache-publish-") as scratch:
        workspace = Workspace(
            Checkout.copy_of(repo_root, scratch / "c" / "a-publishing-workspace" / "checkout"),
            scratch / "c-caches",
        )
        namespace = f"publish-from-cache-{uuid.uuid4().hex[:12]}"
        publisher = PublishCheckout.set_up(workspace.checkout, test_registry, namespace, scratch)
        run = workspace.pants_with_cache(
            remote_cache, cache_builds.namespace_option, "publish", "::"
        )
        assert run.returncode == 0, run.report()
        yield CachePublish(publisher, run)


def test_a_clean_workspace_runs_no_image_step_that_the_remote_cache_holds(
    cache_builds: CacheBuilds, image_targets: list[ImageTarget]
) -> None:
    steps = image_steps(cache_builds.writer.checkout, image_targets)
    writer_ran = set(image_steps_run(cache_builds.writer_run, steps))
    missing = steps - writer_ran
    assert not missing, f"A did not run: {sorted(missing)}\n{cache_builds.writer_run.report()}"
    for prefix in PLATFORM_STEP_PREFIXES:
        assert any(step.startswith(prefix) for step in writer_ran), cache_builds.writer_run.report()

    reader_ran = image_steps_run(cache_builds.reader_run, steps)
    assert reader_ran == [], f"B ran again: {reader_ran}\n{cache_builds.reader_run.report()}"


def test_a_clean_workspace_builds_the_same_digests_from_the_remote_cache(
    cache_builds: CacheBuilds, image_targets: list[ImageTarget]
) -> None:
    digests = cache_builds.writer.checkout.digests(image_targets)
    assert cache_builds.reader.checkout.digests(image_targets) == digests


def test_a_clean_workspace_publishes_every_image_without_building_it(
    cache_builds: CacheBuilds, cache_publish: CachePublish, image_targets: list[ImageTarget]
) -> None:
    writer = cache_builds.writer.checkout
    ran = image_steps_run(cache_publish.run, image_steps(writer, image_targets))
    assert ran == [], f"C built again: {ran}\n{cache_publish.run.report()}"

    # The pushes are interactive processes, which Pants never caches: each prints its summary.
    pushed = [
        (push["name"], push["digest"]) for push in PUSHED_LINE.finditer(cache_publish.run.stdout)
    ]
    built = [writer.outputs(target).metadata for target in image_targets]
    expected = [
        (cache_publish.publisher.name(image["repository"]), image["digest"]) for image in built
    ]
    assert sorted(pushed) == sorted(expected), cache_publish.run.stdout


def test_publish_from_the_remote_cache_tags_the_digests_that_the_writer_built(
    cache_builds: CacheBuilds, cache_publish: CachePublish, image_targets: list[ImageTarget]
) -> None:
    publisher = cache_publish.publisher
    built = {
        target.address: cache_builds.writer.checkout.outputs(target).metadata
        for target in image_targets
    }
    in_registry = {
        (address, tag): publisher.tagged_digest(f"{publisher.namespace}/{image['repository']}", tag)
        for address, image in built.items()
        for tag in image["tags"]
    }
    assert in_registry == {
        (address, tag): image["digest"] for address, image in built.items() for tag in image["tags"]
    }


def test_with_the_cache_server_down_package_succeeds_with_a_warning(
    cache_builds: CacheBuilds, image_targets: list[ImageTarget]
) -> None:
    writer = cache_builds.writer
    digests = writer.checkout.digests(image_targets)
    # Bound and not listening: every connection is refused, and no other process can take it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"grpc://127.0.0.1:{closed.getsockname()[1]}"
        # Without the local process cache, every step asks the remote cache first.
        run = writer.pants_with_cache(
            address, cache_builds.namespace_option, "--no-local-cache", "package", "::"
        )

    assert run.returncode == 0, run.report()
    assert CACHE_READ_WARNING in run.stderr, run.report()
    missing = image_steps(writer.checkout, image_targets) - set(run.completed_steps)
    assert not missing, f"steps that did not run: {sorted(missing)}\n{run.report()}"
    assert writer.checkout.digests(image_targets) == digests


def image_steps_run(run: PantsRun, steps: set[str]) -> list[str]:
    """The image-building processes that `run` ran: `steps`, and those with a platform."""
    return [
        step
        for step in run.completed_steps
        if step in steps or step.startswith(PLATFORM_STEP_PREFIXES)
    ]
