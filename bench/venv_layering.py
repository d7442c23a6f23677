"""Measures what one layer per installed distribution saves over one venv layer per lock, and
what merging the small ones into one layer per image keeps of it.

Usage: ./pants run bench/venv_layering.py -- --uv <uv binary or uv 0.13.9 wheel>

It writes docs/venv-layering.md (`--out` elsewhere).

It writes a synthetic monorepo of services whose dependency sets overlap as they do in practice
(a shared web stack, some with a database or cloud client, some with compiled packages, a few
with identical locks), locks each with uv, installs each lock with the image tool's own code
(`build_venv`, for Debian 12's CPython 3.11), and writes, per service:

- the venv as one layer (what `pants package` did before it split venvs by distribution);
- the same files split by distribution (the files each `RECORD` lists, plus their bytecode) into
  one layer per distribution and one layer for the rest (`pyvenv.cfg`, `bin/python*`, the
  `.pth`), as `pants package` builds them;
- those layers as `pants package` lists them in the image: the ones below
  `MERGED_LAYER_BELOW_BYTES` merged into one by the image tool's `merge-layers` code.

Layers are written by `imagetool.tarlayer.write_layer`, so equal contents give equal digests, as
in a registry. It prints the unique compressed bytes (what a registry stores and a cold node
pulls) and the layers per image for the three ways, and the time each took to write.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import os
import posixpath
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from esb_contract.limits import MERGED_LAYER_BELOW_BYTES, layers_to_merge
from imagetool.merge_layers import merged_members
from imagetool.tarlayer import LayerBlob, members_from_directory, write_layer
from imagetool.venv.commands import uv_from
from imagetool.venv.export import export_requirements
from imagetool.venv.install import build_venv, venv_layer_members
from imagetool.venv.relocation import VENV_PATH
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_process import Uv

# `pants run` runs the script from a sandbox, in the repository's root.
DOC = Path("docs") / "venv-layering.md"
DEBIAN_12 = TargetPython("3.11.2", "x86_64-manylinux_2_36", "/usr/bin/python3.11")
MTIME = 315532800
# Top-level dependencies of each synthetic service. Shapes seen in ESB-like monorepos: most
# services are HTTP APIs on one stack, workers add a queue or database client, a few need
# compiled packages, and some are copies of another's dependency set.
STACKS = {
    "web": ["fastapi==0.115.6", "uvicorn==0.34.0", "pydantic-settings==2.7.1", "structlog==24.4.0"],
    "http-client": ["httpx==0.28.1"],
    "db": ["sqlalchemy==2.0.36", "psycopg[binary]==3.2.3"],
    "queue": ["redis==5.2.1"],
    "crypto": ["cryptography==44.0.0", "orjson==3.10.12"],
    "cloud": ["boto3==1.35.90"],
    "data": ["numpy==2.2.1"],
}
SERVICES = {
    "orders": ["web", "db", "http-client"],
    "payments": ["web", "db", "crypto"],
    "users": ["web", "db"],
    "catalog": ["web", "db", "queue"],
    "search": ["web", "http-client", "data"],
    "notifier": ["queue", "http-client"],
    "exporter": ["cloud", "db"],
    "signer": ["crypto", "web"],
    "gateway": ["web", "http-client"],
    "gateway-eu": ["web", "http-client"],
}


@dataclass
class Totals:
    layers_per_image: list[int]
    unique: dict[str, int]
    """Compressed size by digest, each layer once."""
    seconds: float

    @property
    def unique_bytes(self) -> int:
        return sum(self.unique.values())


def write_service(root: Path, name: str, stacks: list[str]) -> Path:
    project = root / name
    project.mkdir()
    dependencies = [requirement for stack in stacks for requirement in STACKS[stack]]
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = "==3.11.*"
            dependencies = {json.dumps(dependencies)}
            """
        )
    )
    return project


def distribution_files(venv_root: Path) -> dict[str, set[str]]:
    """The venv's files (relative paths) owned by each distribution, bytecode included."""
    site_packages = venv_root / "lib" / f"python{DEBIAN_12.minor_version}" / "site-packages"
    owned: dict[str, set[str]] = {}
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        files = set()
        for row in csv.reader(io.StringIO(record.read_text())):
            if not row:
                continue
            path = posixpath.normpath((site_packages.relative_to(venv_root) / row[0]).as_posix())
            files.add(path)
            if path.endswith(".py"):
                directory, module = posixpath.split(path)
                stem = module[: -len(".py")]
                files.add(f"{directory}/__pycache__/{stem}.cpython-311.pyc")
        owned[record.parent.name] = {path for path in files if (venv_root / path).exists()}
    return owned


def split_layers(
    venv_root: Path, out_dir: Path, written: dict[str, tuple[LayerBlob, Path]]
) -> list[tuple[LayerBlob, Path]]:
    """The venv as one layer per distribution and one for the rest, each with its file. A layer
    whose files were already written for another service is not written again: `written` stands
    for the cache that shares it (keyed here by its paths and contents)."""
    owned = distribution_files(venv_root)
    # Parent directories are implied (0755 root:root, as `members_from_directory` makes them).
    files = {
        posixpath.relpath(f"/{info.name.lstrip('/')}", VENV_PATH): (info, data)
        for info, data in members_from_directory(venv_root, prefix=VENV_PATH)
        if not info.isdir()
    }
    groups = dict(owned)
    groups["(venv)"] = set(files) - set().union(*owned.values())
    blobs = []
    for index, (name, paths) in enumerate(sorted(groups.items())):
        members = [files[path] for path in sorted(paths)]
        digest = hashlib.sha256()
        for info, data in members:
            digest.update(f"{info.name}\0{info.mode}\0{info.linkname}\0".encode())
            digest.update(hashlib.sha256(data or b"").digest())
        key = digest.hexdigest()
        if key not in written:
            path = out_dir / f"{index}.tar.gz"
            written[key] = (write_layer(members, path, mtime=MTIME), path)
        blobs.append(written[key])
    return blobs


def merge_small(
    blobs: list[tuple[LayerBlob, Path]], out_path: Path, written: dict[tuple[str, ...], LayerBlob]
) -> list[LayerBlob]:
    """The layers as `pants package` lists them in the image (`layers_to_merge`): the large ones
    as they are, the small ones merged into one by the image tool's own `merge-layers` code.
    Services with the same small layers share the merged one (`written`, keyed by their
    digests)."""
    merged = layers_to_merge([blob.size for blob, _ in blobs])
    if not merged:
        return [blob for blob, _ in blobs]
    key = tuple(blobs[index][0].digest for index in merged)
    if key not in written:
        members = merged_members([blobs[index][1] for index in merged])
        written[key] = write_layer(members, out_path, mtime=MTIME)
    kept = [blob for index, (blob, _) in enumerate(blobs) if index not in merged]
    return [*kept, written[key]]


def measure(uv: Uv, services: dict[str, Path], scratch: Path) -> tuple[Totals, Totals, Totals]:
    whole = Totals([], {}, 0.0)
    split = Totals([], {}, 0.0)
    merged = Totals([], {}, 0.0)
    written_whole: set[str] = set()
    written_split: dict[str, tuple[LayerBlob, Path]] = {}
    written_merged: dict[tuple[str, ...], LayerBlob] = {}
    for name, project in services.items():
        requirements = export_requirements(uv, project).hashed
        venv = build_venv(uv, requirements, scratch / name / "venv", DEBIAN_12)
        started = time.perf_counter()
        # Services with identical locks share the one venv layer (one process, one cache entry).
        if requirements not in written_whole:
            written_whole.add(requirements)
            blob = write_layer(
                venv_layer_members(venv), scratch / name / "venv.tar.gz", mtime=MTIME
            )
            whole.unique[blob.digest] = blob.size
        whole.seconds += time.perf_counter() - started
        whole.layers_per_image.append(1)

        (scratch / name / "split").mkdir()
        started = time.perf_counter()
        blobs = split_layers(venv.root, scratch / name / "split", written_split)
        split_seconds = time.perf_counter() - started
        split.seconds += split_seconds
        split.layers_per_image.append(len(blobs))
        split.unique.update({blob.digest: blob.size for blob, _ in blobs})

        started = time.perf_counter()
        listed = merge_small(blobs, scratch / name / "merged.tar.gz", written_merged)
        # The build writes the small layers for its cache too, then merges them.
        merged.seconds += split_seconds + time.perf_counter() - started
        merged.layers_per_image.append(len(listed))
        merged.unique.update({blob.digest: blob.size for blob in listed})
    return whole, split, merged


def report(whole: Totals, split: Totals, merged: Totals, services: int) -> str:
    mb = 1_000_000
    listed = "\n".join(
        f"| {name} | {', '.join(f'`{r}`' for stack in stacks for r in STACKS[stack])} |"
        for name, stacks in SERVICES.items()
    )
    columns = (whole, split, merged)

    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    table = "\n".join(
        [
            f"| {services} services | one layer per lock | one layer per distribution "
            f"| small layers merged (below {MERGED_LAYER_BELOW_BYTES / mb:g} MB) |",
            "|---|---:|---:|---:|",
            row(
                "unique compressed bytes (registry, cold pull of all)",
                [f"{t.unique_bytes / mb:.1f} MB" for t in columns],
            ),
            row("distinct venv layers", [str(len(t.unique)) for t in columns]),
            row("venv layers per image (max)", [str(max(t.layers_per_image)) for t in columns]),
            row(
                "venv layers per image (mean)",
                [f"{sum(t.layers_per_image) / len(t.layers_per_image):.1f}" for t in columns],
            ),
            row("time to write the layers (s)", [f"{t.seconds:.1f}" for t in columns]),
        ]
    )
    return (
        textwrap.dedent(
            f"""\
        # Venv layering: one layer per lock, one per distribution, or the small ones merged

        Written by `./pants run bench/venv_layering.py -- --uv <uv>` on {datetime.date.today()},
        on a machine with {os.cpu_count()} cores. Re-run it rather than editing this file.

        A monorepo's services rarely have identical locks, but they share most of their
        packages. This measures, on {services} synthetic services (below), each locked by uv and
        installed by the image tool's own code for Debian 12's CPython 3.11, what a registry
        stores (and a node with none of the images pulls) when each service's venv is one layer,
        one layer per installed distribution, or one layer per distribution of
        {MERGED_LAYER_BELOW_BYTES / mb:g} MB or more with the smaller ones (and the venv's own
        files) merged into one layer, as `pants package` lists them. Equal layers have equal
        digests (`imagetool.tarlayer`), so a layer shared by services counts once.

        """
        )
        + table
        + "\n\n"
        + textwrap.dedent(
            f"""\
        The time is that of writing (tar, ISA-L, sha256) each distinct layer once, as the cache
        does; installing the wheels is the same work either way.

        Here one layer per distribution stores {whole.unique_bytes / split.unique_bytes:.1f}×
        fewer bytes than one layer per lock, and merging the small ones
        {whole.unique_bytes / merged.unique_bytes:.1f}× fewer
        ({merged.unique_bytes / split.unique_bytes:.2f}× one per distribution), with
        {max(merged.layers_per_image)} venv layers per image at most instead of
        {max(split.layers_per_image)}, and {len(merged.unique)} distinct layers for a node that
        pulls every image instead of {len(split.unique)}. Every layer costs a node that pulls the image requests
        and an unpacking of its own, whatever its size ([benchmarks](benchmarks.md#a-nodes-pull)
        measures the node's side), so that is what `pants package` builds: each distribution is
        its own cached process, keyed by its requirement (version and hashes) and the base's
        platform, shared by every service that locks it; the image lists the large ones as they
        are and one layer merged from the small ones, itself a cached process keyed by their
        digests, so services with the same small layers share it too. A service with more than
        100 distributions installs the last ones (in name order) in one layer, to stay under the
        127 layers an image may have. The layers are as reproducible as the one venv layer was:
        same files, same tar rules.

        | service | top-level requirements |
        |---|---|
        """
        )
        + listed
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", type=Path, required=True, help="uv's binary or its wheel.")
    parser.add_argument(
        "--out", type=Path, default=DOC, help=f"Where to write the report (default {DOC})."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esb-venv-layering-") as scratch_name:
        scratch = Path(scratch_name)
        uv = uv_from(str(args.uv.absolute()), None, scratch, cache_dir=scratch / "uv-cache")
        services = {}
        (scratch / "services").mkdir()
        for name, stacks in SERVICES.items():
            project = write_service(scratch / "services", name, stacks)
            locked = uv.run(["lock", "--python", sys.executable], cwd=project)
            if locked.returncode != 0:
                print(locked.stderr, file=sys.stderr)
                return 1
            services[name] = project
        whole, split, merged = measure(uv, services, scratch / "work")
    text = report(whole, split, merged, len(services))
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
