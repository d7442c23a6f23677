"""Tests of the pure pieces of bench/platforms: the base switched to both platforms, the registry
bytes of an image of several platforms, and the section it writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from esb_bench import platforms_report, sizes
from esb_bench.docker import DockerRun
from esb_bench.ours import OurImage, PantsRun
from esb_bench.platforms import (
    AMD64,
    AMD64_ONLY,
    ARM64,
    BOTH,
    PlatformsResults,
    lock_command,
    with_platforms,
)
from esb_bench.process import BenchError
from esb_bench.report import PLATFORMS_BEGIN, PLATFORMS_END, platforms_block

BASE_BUILD = """esb_base_image(
    name="esb-service-base",
    repository="esb/service-base",
    packages=["bash"],
)
"""


def test_the_base_gets_both_platforms_after_its_repository() -> None:
    assert with_platforms(BASE_BUILD, (AMD64, ARM64)) == BASE_BUILD.replace(
        'repository="esb/service-base",\n',
        'repository="esb/service-base",\n    platforms=["linux/amd64", "linux/arm64"],\n',
    )


def test_a_base_without_the_repository_field_is_an_error() -> None:
    with pytest.raises(BenchError, match="repository"):
        with_platforms('esb_base_image(name="b")\n', (AMD64, ARM64))


def write_blob(layout: Path, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return f"sha256:{digest}"


def test_registry_bytes_of_an_index_count_each_blob_once(tmp_path: Path) -> None:
    layout = tmp_path / "api.oci"
    shared = {"digest": "sha256:" + "a" * 64, "size": 1000}
    entries = []
    for platform, letter in ((AMD64, "b"), (ARM64, "c")):
        own = {"digest": "sha256:" + letter * 64, "size": 300}
        entries.append(
            {
                "platform": platform,
                "digest": write_blob(layout, f"manifest of {platform}".encode()),
                "config_digest": write_blob(layout, f"config of {platform}".encode()),
                "repository": "esb/api",
                "tags": ["1"],
                "layers": [shared, own],
            }
        )
    index = write_blob(layout, b"the index")
    metadata = {"digest": index, "repository": "esb/api", "tags": ["1"], "platforms": entries}
    (tmp_path / "api.image.json").write_text(json.dumps(metadata))
    image = OurImage(tmp_path / "api.image.json")

    small_blobs = sum(
        len(f"{kind} of {platform}")
        for kind in ("manifest", "config")
        for platform in (AMD64, ARM64)
    )
    assert sizes.stored([image, image]) == 1000 + 2 * 300 + small_blobs + len(b"the index")
    assert (
        OurImage(image.metadata_path, ARM64).metadata["config_digest"]
        == entries[1]["config_digest"]
    )
    with pytest.raises(BenchError, match="linux/amd64, linux/arm64"):
        OurImage(image.metadata_path, "linux/riscv64").metadata


def pants_run(seconds: float) -> PantsRun:
    return PantsRun(seconds, startup_seconds=1.0, processes=(), downloads=0, download_seconds=0.0)


def measured() -> PlatformsResults:
    results = PlatformsResults(services=3)
    results.ours = {
        AMD64_ONLY: {"cold": pants_run(40.0), "one-file edit": pants_run(1.0)},
        BOTH: {"cold": pants_run(55.0), "one-file edit": pants_run(1.5)},
    }
    results.docker = {
        AMD64: {"cold": DockerRun(20.0, 39, 42), "one-file edit": DockerRun(2.0, 21, 42)},
        ARM64: {
            "cold": DockerRun(300.0, 39, 42, failed_seconds=(12.0,)),
            "one-file edit": DockerRun(6.0, 21, 42),
        },
    }
    results.base_load_seconds = {AMD64: 1.0, ARM64: 1.5}
    results.registry = {AMD64_ONLY: 200_000_000, BOTH: 390_000_000}
    results.lock_command = lock_command(Path("/tmp/bench/lock-caches"))
    results.pants_command = ["./pants", "--local-store-dir=/tmp/bench/caches", "package", "::"]
    return results


def test_the_section_compares_each_platform_and_both() -> None:
    block = platforms_report.render(measured(), {"CPU": "test"}, Path("/tmp/bench"))
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [cell.strip() for cell in line.strip("|").split("|")]
            for line in block.splitlines()
            if line.startswith("| ")
        )
    }

    assert platforms_block(block) == block
    assert block.startswith(f"{PLATFORMS_BEGIN}\n## Platforms: amd64 and arm64\n")
    assert block.endswith(PLATFORMS_END)
    # Seconds and ratio, cold then after the edit.
    assert rows["amd64"] == ["40.0", "20.0", "2.00", "1.0", "2.0", "0.50"]
    # What the second platform adds to ours, against the emulated build.
    assert rows["arm64 (ours: added to amd64; docker build: under QEMU)"] == [
        "15.0",
        "300.0",
        "0.05",
        "0.50",
        "6.0",
        "0.08",
    ]
    assert rows["amd64 and arm64 (docker build: the two added)"][:3] == ["55.0", "320.0", "0.17"]
    assert "| amd64 and arm64, as indexes | 390.0 | 1.95 |" in block
    assert "docker build --platform linux/arm64, cold: failed attempts of 12.0 s" in block
    assert "--local-store-dir=$BENCH/caches" in block
