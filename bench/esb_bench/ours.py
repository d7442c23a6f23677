"""Ours: `./pants package base:: services::` with the esb plugin, in a workspace with caches of its
own."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from esb_bench.process import BenchError, settle, timed_with_retries, wait_until

BASE_IMAGE_METADATA = "dist/base/esb-service-base.image.json"
# A file of the base's trust/tools layer: a line appended to it is a change of the base's content,
# as a fix of the base's scripts would be, rather than of its configuration only.
BASE_EDIT_FILE = "base/ensure_ca_trust.sh"
# The CI profile: Pants' REAPI cache, read and written, at the address in this variable.
CI_PROFILE = "pants.ci.toml"
REMOTE_CACHE_VARIABLE = "ESB_REMOTE_CACHE"
# The monorepo's images: the base and the services. The workspace is a copy of this checkout,
# whose `::` also holds the plugin's own wheel, which a repository that installs the plugin does
# not build, and which the Docker contenders do not build either.
IMAGE_SPECS = ("base::", "services::")


@dataclass(frozen=True)
class Step:
    description: str
    start: float
    """Seconds since the launch of ./pants."""
    seconds: float


@dataclass(frozen=True)
class PantsRun:
    seconds: float
    startup_seconds: float
    """From the launch of ./pants to its first rule: pantsd start, plugin loading, scheduler."""
    processes: tuple[Step, ...]
    """Every process that ran locally, i.e. missed both caches, in the order they started."""
    downloads: int
    download_seconds: float
    """The time downloads took, summed (they run concurrently)."""
    pantsd_rss_mib: float | None = None
    """pantsd's resident memory after the run, when a pantsd served it."""
    failed_seconds: tuple[float, ...] = ()
    """Attempts that failed on the network and were run again: in `seconds`, as in a CI job."""

    @property
    def work(self) -> int:
        return len(self.processes)


def summarize_workunits(wall_seconds: float, launched: float, workunits: list[dict]) -> PantsRun:
    def start(unit: dict) -> float:
        return unit["start_secs"] + unit["start_nanos"] / 1e9 - launched

    def duration(unit: dict) -> float:
        return unit.get("duration_secs", 0) + unit.get("duration_nanos", 0) / 1e9

    processes = sorted(
        (
            Step(unit["description"], start(unit), duration(unit))
            for unit in workunits
            if unit["name"] == "run_local_process"
        ),
        key=lambda step: step.start,
    )
    # The pex tool comes from a file:// URL (see ./pants): only network downloads count.
    downloads = [
        unit
        for unit in workunits
        if unit["name"] == "download_file" and unit["description"].startswith("Downloading: http")
    ]
    return PantsRun(
        seconds=wall_seconds,
        startup_seconds=min(start(unit) for unit in workunits),
        processes=tuple(processes),
        downloads=len(downloads),
        download_seconds=sum(duration(unit) for unit in downloads),
    )


class OurWorkspace:
    """`./pants package base:: services::` in `root`, with a Pants store and named caches under `caches` that the
    first run finds empty, Pants' workunit logger on, and, with `remote_cache`, the CI profile
    reading and writing that REAPI cache."""

    def __init__(self, root: Path, caches: Path, logs: Path, remote_cache: str | None):
        self.root = root
        self.logs = logs
        self.workunit_dir = caches / "workunits"
        self.workunit_dir.mkdir(parents=True)
        # The workunit logger is on for every run: a change of backends would restart pantsd.
        self.options = [
            f"--local-store-dir={caches / 'lmdb_store'}",
            f"--named-caches-dir={caches / 'named_caches'}",
            "--backend-packages=+['pants.backend.experimental.tools.workunit_logger']",
            "--workunit-logger-enabled",
            f"--workunit-logger-logdir={self.workunit_dir}",
        ]
        self.env = dict(os.environ)
        if remote_cache:
            self.options.append(f"--pants-config-files={CI_PROFILE}")
            self.env[REMOTE_CACHE_VARIABLE] = remote_cache
        self.command = ["./pants", *self.options, "package", *IMAGE_SPECS]

    def package(self, label: str) -> PantsRun:
        settle()
        before = set(self.workunit_dir.iterdir())
        launched = time.time()
        log = self.logs / f"ours-{label}.log"
        attempts = timed_with_retries(self.command, cwd=self.root, env=self.env, log=log)
        # A failed attempt writes a workunit log too: the steps are those of the last attempt.
        workunit_log = max(
            set(self.workunit_dir.iterdir()) - before, key=lambda path: path.stat().st_mtime
        )
        failed = sum(attempts.failed_seconds)
        summary = summarize_workunits(
            attempts.seconds + failed, launched + failed, json.loads(workunit_log.read_text())
        )
        summary = dataclasses.replace(summary, failed_seconds=attempts.failed_seconds)
        pid = pantsd_pid(self.root)
        if pid is None:
            return summary
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        rss_kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return dataclasses.replace(summary, pantsd_rss_mib=rss_kib / 1024)

    def floor(self, label: str) -> PantsRun:
        """`./pants --no-pantsd --version` here: Pants' start-up alone, which no build of the
        workspace can undercut; it runs no rule and leaves the caches as they were."""
        return self._timed(["./pants", "--no-pantsd", "--version"], label)

    def list_targets(self, label: str) -> PantsRun:
        """`./pants list` of the targets that `package` builds, with the same options and pantsd
        warm: Pants' own work for a run over these targets, under which no no-op can go."""
        settle()
        return self._timed(["./pants", *self.options, "list", *IMAGE_SPECS], label)

    def _timed(self, command: list[str], label: str) -> PantsRun:
        """A Pants command that runs no process, timed as a whole."""
        log = self.logs / f"ours-{label}.log"
        attempts = timed_with_retries(command, cwd=self.root, env=self.env, log=log)
        return PantsRun(
            seconds=attempts.seconds,
            startup_seconds=attempts.seconds,
            processes=(),
            downloads=0,
            download_seconds=0.0,
            failed_seconds=attempts.failed_seconds,
        )

    def image(self, name: str, platform: str | None = None) -> OurImage:
        (path,) = (self.root / "dist").glob(f"**/{name}.image.json")
        return OurImage(path, platform)

    def base(self, platform: str | None = None) -> OurImage:
        return OurImage(self.root / BASE_IMAGE_METADATA, platform)


def pantsd_pid(root: Path) -> int | None:
    """The pantsd that serves the runs in the workspace `root`, if one runs."""
    for pidfile in root.glob(".pids/*/pantsd/pid"):
        pid = int(pidfile.read_text())
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if str(root).encode() in cmdline:
            return pid
    return None


def stop_pantsd(root: Path) -> None:
    pid = pantsd_pid(root)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), seconds=30)


def append_line(path: Path, number: int) -> None:
    # A different line each time: the same line twice would let a later build reuse the cache
    # entry of an earlier, byte-identical source tree.
    with path.open("a") as out:
        out.write(f"# bench edit {number}\n")


@dataclass(frozen=True)
class OurImage:
    """The files `./pants package` wrote for one image: `<name>.image.json` and its siblings. Of
    an image of several platforms, the image of `platform`, e.g. `linux/arm64`."""

    metadata_path: Path
    platform: str | None = None

    def sibling(self, suffix: str) -> Path:
        return self.metadata_path.with_name(self.metadata_path.name.replace(".image.json", suffix))

    @property
    def written(self) -> dict:
        """`.image.json` as written: of an image of several platforms, the index's."""
        return json.loads(self.metadata_path.read_text())

    @property
    def metadata(self) -> dict:
        """The metadata of one platform's image: its manifest, config, layers and name."""
        written = self.written
        if "platforms" not in written:
            return written
        for entry in written["platforms"]:
            if entry["platform"] == self.platform:
                return {**entry, "repository": written["repository"], "tags": written["tags"]}
        built = ", ".join(entry["platform"] for entry in written["platforms"])
        raise BenchError(
            f"{self.metadata_path} is of {built}: name one of them, not {self.platform}"
        )

    @property
    def reference(self) -> str:
        metadata = self.metadata
        return f"{metadata['repository']}:{metadata['tags'][0]}"

    def blob(self, digest: str) -> Path:
        return self.sibling(".oci") / "blobs" / "sha256" / digest.split(":", 1)[1]

    @property
    def config(self) -> dict:
        """The runtime configuration: Env, Cmd, User and so on."""
        return json.loads(self.blob(self.metadata["config_digest"]).read_text())["config"]

    def file_content(self, path_in_image: str) -> bytes:
        for layer in self.metadata["layers"]:
            with tarfile.open(self.blob(layer["digest"])) as archive:
                try:
                    member = archive.getmember(path_in_image)
                except KeyError:
                    continue
                content = archive.extractfile(member)
                if content is None:
                    raise BenchError(
                        f"/{path_in_image} in the image of {self.metadata_path} is not a "
                        "regular file"
                    )
                return content.read()
        raise BenchError(f"no /{path_in_image} in the image of {self.metadata_path}")
