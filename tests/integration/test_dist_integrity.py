"""What `package` guarantees about `dist/`: a blob is never seen partial, never rewritten once
there, never written unless it matches its digest; a failed run writes nothing but complete
blobs, and says that what `dist/` holds is from an earlier run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from integration.checkouts import Checkout, ImageTarget
from integration.prerequisites import unavailable

NO_OP_RUNS = 20
LOCAL_STORE = Path.home() / ".cache" / "pants" / "lmdb_store"


@pytest.fixture
def built_copy(checkout: Checkout) -> Checkout:
    """A copy of the checkout built once, whose later runs reuse its warm pantsd."""
    run = checkout.pants("package", "::")
    assert run.returncode == 0, run.report()
    return checkout


def test_a_reader_never_sees_a_shared_blob_partial_during_no_op_runs(
    built_copy: Checkout,
) -> None:
    blob = built_copy.largest_blob()
    size, inode = blob.stat().st_size, blob.stat().st_ino
    sizes_seen: set[int] = set()
    reads = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal reads
        while not done.is_set():
            with blob.open("rb") as file:
                sizes_seen.add(len(file.read()))
            reads += 1

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(NO_OP_RUNS):
            run = built_copy.pants("package", "::")
            assert run.returncode == 0, run.report()
    finally:
        done.set()
        reader.join()

    assert reads > NO_OP_RUNS
    assert sizes_seen == {size}
    # Not rewritten at all: the same file, whole.
    assert blob.stat().st_ino == inode
    built_copy.assert_every_blob_is_whole()


def test_a_failed_run_leaves_the_earlier_outputs_whole_and_says_they_are_earlier(
    built_copy: Checkout, image_targets: list[ImageTarget]
) -> None:
    service = next(target for target in image_targets if target.is_service)
    before = {
        target.address: built_copy.outputs(target).metadata_file.read_bytes()
        for target in image_targets
    }
    # A dependency the service's lock does not have: its lock check fails the build.
    built_copy.substitute(
        f"{service.spec_path}/pyproject.toml",
        r"dependencies\s*=\s*\[",
        'dependencies = ["esb-no-such-distribution==1.0", ',
    )

    run = built_copy.pants("package", "::")

    assert run.returncode == 1, run.report()
    assert "Traceback" not in run.stderr, run.report()
    metadata = built_copy.outputs(service).metadata_file
    assert f"{service.address} failed: nothing of this run was written to dist/" in run.stderr
    assert f"{metadata} and the other outputs there are from an earlier run" in run.stderr
    after = {
        target.address: built_copy.outputs(target).metadata_file.read_bytes()
        for target in image_targets
    }
    assert after == before
    built_copy.assert_every_blob_is_whole()
    for target in image_targets:
        layout = json.loads((built_copy.outputs(target).layout / "index.json").read_text())
        for manifest in layout["manifests"]:
            assert manifest["digest"].removeprefix("sha256:") in built_copy.blob_files()


def test_a_corrupt_entry_of_the_local_store_fails_package_and_lands_nowhere(
    built_checkout: Checkout, repo_root: Path, scratch: Path
) -> None:
    """Pants hands a blob's bytes from its store without checking them; `package` checks."""
    blob = built_checkout.largest_blob()
    stored = LOCAL_STORE / "immutable" / "files" / blob.name[:2] / blob.name
    if not stored.is_file():
        unavailable(f"the local store at {LOCAL_STORE} does not hold {blob.name} as a file")
    # The test damages a copy of the store, never the one every other build uses.
    store = scratch / "lmdb_store"
    shutil.copytree(LOCAL_STORE, store)
    damaged = store / "immutable" / "files" / blob.name[:2] / blob.name
    os.chmod(damaged, 0o644)
    with damaged.open("r+b") as file:
        file.seek(1000)
        byte = file.read(1)
        file.seek(1000)
        file.write(bytes([byte[0] ^ 0xFF]))
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")

    run = checkout.pants(f"--local-store-dir={store}", "--no-remote-cache-read", "package", "::")

    assert run.returncode == 1, run.report()
    assert "Traceback" not in run.stderr, run.report()
    assert "Pants' local store returned corrupt bytes for a blob of " in run.stderr, run.report()
    assert f"blob sha256:{blob.name}" in run.stderr, run.report()
    assert "lmdb_store" in run.stderr
    assert blob.name not in checkout.blob_files()
    checkout.assert_every_blob_is_whole()
    assert list(checkout.dist.glob("**/*.image.json")) == []


def test_a_full_disk_fails_package_with_no_partial_blob_and_no_outputs(
    repo_root: Path, scratch: Path
) -> None:
    if os.geteuid() != 0:
        unavailable("mounting a small filesystem on dist/ needs root")
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    checkout.dist.mkdir()
    # Room for the small blobs, not for the base's root filesystem layer.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(checkout.dist)], check=True
    )
    try:
        run = checkout.pants("package", "::")

        assert run.returncode == 1, run.report()
        assert "Traceback" not in run.stderr, run.report()
        assert "No space left on device" in run.stderr, run.report()
        assert "make room or permissions for dist/" in run.stderr, run.report()
        checkout.assert_every_blob_is_whole()
        assert list(checkout.dist.glob("**/*.image.json")) == []
        assert list(checkout.dist.glob("**/.*.partial")) == []
    finally:
        subprocess.run(["umount", str(checkout.dist)], check=True)
