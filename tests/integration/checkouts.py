"""Copies of the checkout under test, and the Pants runs made in them.

Each copy is the working tree as git sees it (tracked and untracked files, less ignored ones), so
uncommitted work is tested too. Pants runs there as a user runs it, with the copy's own daemon
(started by its first run; every copy lives in a `scratch_directory`, which stops the daemon
before deleting the copy), with the plain console (one `Completed: <description>` line per
process that actually ran, none for a cache hit), and with an environment of its own rather than
the test's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from docker import DockerClient
from docker.models.images import Image
from packaging.utils import canonicalize_name as canonical_name

from esb_contract.image_spec import Platform
from imagetool.oci import OciLayout, write_docker_archive

# The working tree as git sees it: tracked and untracked files, less ignored ones.
LIST_WORKING_TREE = ("ls-files", "-z", "--cached", "--others", "--exclude-standard")
# Never copied, even where a .gitignore forgets them: build outputs and the test engines' state.
EXCLUDED_TOP_LEVEL = frozenset({"dist", ".ci-state"})
# The variables a Pants run needs from the test's environment: the launcher finds CPython 3.9 on
# PATH or under ~/.pyenv and keeps Pants and its caches under ~/.cache; HTTPS may need a bundle.
PANTS_ENVIRONMENT = ("PATH", "HOME", "SSL_CERT_FILE")
PANTS_TIMEOUT_S = 900
IMAGE_TARGET_TYPES = ("esb_base_image", "esb_service_image")
WORKER = "services/worker"
_COMPLETED = re.compile(r"^\S+ \[INFO\] Completed: (.+)$", re.MULTILINE)
# The roots of the copies whose daemon a run started and `stop_daemons` has not stopped yet.
_DAEMON_ROOTS: set[Path] = set()


@dataclass(frozen=True)
class PantsRun:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def completed_steps(self) -> list[str]:
        """The descriptions of the processes that ran, in the order they finished."""
        return _COMPLETED.findall(self.stderr)

    def report(self, tail_lines: int = 60) -> str:
        """The command, its status and the end of its log, for assertion messages."""
        tail = "\n".join(self.stderr.splitlines()[-tail_lines:])
        return f"`{' '.join(self.argv)}` exited with {self.returncode}; its log ends with:\n{tail}"


@dataclass(frozen=True)
class ImageTarget:
    """An `esb_base_image` or `esb_service_image` target, as `pants peek` shows it."""

    address: str
    target_type: str
    sources: tuple[str, ...]

    @classmethod
    def service(cls, address: str) -> ImageTarget:
        """The `esb_service_image` at `address`, without asking Pants: enough for its outputs,
        whose paths follow from the address."""
        return cls(address, "esb_service_image", ())

    @property
    def is_service(self) -> bool:
        return self.target_type == "esb_service_image"

    @property
    def spec_path(self) -> str:
        return self.address.partition(":")[0]

    def output_prefix(self, dist: Path) -> Path:
        """Where `package` writes the image: Pants' default output path, `<spec_path with dots
        for slashes>/<name>`, followed by `.oci`, `.image.json` and `.inventory.json`."""
        name = self.address.partition(":")[2]
        return dist / self.spec_path.replace("/", ".") / name

    def source(self, suffix: str) -> str:
        """The first of the target's source files whose path ends with `suffix`."""
        return next(path for path in self.sources if path.endswith(suffix))


@dataclass(frozen=True)
class ImageOutputs:
    """The outputs `package` writes for one image."""

    layout: Path
    metadata_file: Path
    inventory: Path
    docker_info_file: Path
    published_file: Path
    """Written by `publish`, not `package`."""

    @classmethod
    def of(cls, target: ImageTarget, dist: Path) -> ImageOutputs:
        prefix = target.output_prefix(dist)
        return cls(
            layout=prefix.with_name(f"{prefix.name}.oci"),
            metadata_file=prefix.with_name(f"{prefix.name}.image.json"),
            inventory=prefix.with_name(f"{prefix.name}.inventory.json"),
            docker_info_file=prefix.with_name(f"{prefix.name}.docker-info.json"),
            published_file=prefix.with_name(f"{prefix.name}.published.json"),
        )

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_file.read_text())

    @property
    def docker_info(self) -> dict[str, Any]:
        return json.loads(self.docker_info_file.read_text())

    def published(self) -> dict[str, dict[str, Any]]:
        """The pushes `publish` recorded, by `registry/repository`; none before the first."""
        if not self.published_file.exists():
            return {}
        return {
            push["name"]: push for push in json.loads(self.published_file.read_text())["pushes"]
        }

    @property
    def digest(self) -> str:
        return self.metadata["digest"]

    @property
    def config(self) -> dict[str, Any]:
        digest = self.metadata["config_digest"].partition(":")[2]
        return json.loads((self.layout / "blobs" / "sha256" / digest).read_bytes())

    def layers_made_by(self, made_by: str) -> list[str]:
        """What the layers whose history entry is `<made_by> (<contents>)` hold, bottom first."""
        history = [entry.get("created_by", "") for entry in self.config["history"]]
        prefix = f"{made_by} ("
        return [entry[len(prefix) : -1] for entry in history if entry.startswith(prefix)]

    def load_into(self, docker_client: DockerClient, platform: Platform | None = None) -> Image:
        """Loads the image into the engine from its layout, as `pants run` does; of an image of
        several platforms, that of `platform`."""
        metadata = self.metadata
        names = [f"{metadata['repository']}:{tag}" for tag in metadata["tags"][:1]]
        with tempfile.TemporaryFile() as archive:
            write_docker_archive(
                OciLayout(self.layout), archive, platform=platform, repo_tags=names
            )
            archive.seek(0)
            (image,) = docker_client.images.load(archive)
        return image


class Checkout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dist = root / "dist"

    @classmethod
    def copy_of(cls, repo_root: Path, destination: Path, paths: Sequence[str] = ()) -> Checkout:
        """Copies the working tree of `repo_root` to `destination`, which must not exist yet; with
        `paths` (git pathspecs), only the files under them."""
        listed = subprocess.run(
            ["git", "-C", str(repo_root), *LIST_WORKING_TREE, "--", *paths],
            check=True,
            capture_output=True,
        ).stdout
        destination.mkdir(parents=True)
        for relative in sorted({os.fsdecode(path) for path in listed.split(b"\0") if path}):
            source = repo_root / relative
            # A tracked file deleted in the working tree is listed, and is not part of it.
            if relative.split("/")[0] in EXCLUDED_TOP_LEVEL or not os.path.lexists(source):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        return cls(destination)

    def pants(
        self,
        *args: str,
        wrapper: Sequence[str] = (),
        passed_env: Sequence[str] = (),
        timeout_s: float = PANTS_TIMEOUT_S,
    ) -> PantsRun:
        """Runs `./pants ARGS` here, as `WRAPPER ./pants ARGS` when a wrapper is given, with the
        test's variables Pants needs and those named in `passed_env`; a run that outlasts
        `timeout_s` is killed and raises `subprocess.TimeoutExpired`.

        The run uses this copy's daemon, which its first run starts, so that only that run pays
        for Pants' start-up. A wrapper would wrap the client alone, not the daemon that does the
        work, so a run with one runs without the daemon, all in the wrapped process."""
        daemon = not wrapper
        argv = (
            *wrapper,
            "./pants",
            "--pantsd" if daemon else "--no-pantsd",
            "--no-dynamic-ui",
            *args,
        )
        names = (*PANTS_ENVIRONMENT, *passed_env)
        environment = {name: os.environ[name] for name in names if name in os.environ}
        if daemon:
            _DAEMON_ROOTS.add(self.root)
        completed = subprocess.run(
            argv,
            cwd=self.root,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return PantsRun(argv, completed.returncode, completed.stdout, completed.stderr)

    def stop_pantsd(self) -> None:
        """Stops this copy's daemon, if one runs, and waits until it has exited."""
        pidfiles = list(self.root.glob(".pids/*/pantsd/pid"))
        for pidfile in pidfiles:
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                continue
        for pidfile in pidfiles:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(int(pidfile.read_text()), 0)
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    break
                time.sleep(0.1)

    def image_targets(self) -> list[ImageTarget]:
        run = self.pants(f"--filter-target-type={','.join(IMAGE_TARGET_TYPES)}", "peek", "::")
        assert run.returncode == 0, run.report()
        return [
            ImageTarget(entry["address"], entry["target_type"], tuple(entry["sources"]))
            for entry in json.loads(run.stdout)
        ]

    def outputs(self, target: ImageTarget) -> ImageOutputs:
        return ImageOutputs.of(target, self.dist)

    def load_service_image(self, address: str, docker_client: DockerClient) -> Image:
        """Loads the image `package` built for the service at `address` into the engine."""
        return self.outputs(ImageTarget.service(address)).load_into(docker_client)

    def digests(self, targets: Sequence[ImageTarget]) -> dict[str, str]:
        """Image address → manifest digest, from the `.image.json` files under `dist/`."""
        return {target.address: self.outputs(target).digest for target in targets}

    def blob_files(self) -> dict[str, Path]:
        """The files of `dist/`'s shared blob directory, by name (a blob's hex digest)."""
        directory = self.dist / "blobs" / "sha256"
        return {path.name: path for path in directory.iterdir()} if directory.is_dir() else {}

    def largest_blob(self) -> Path:
        return max(self.blob_files().values(), key=lambda path: path.stat().st_size)

    def assert_every_blob_is_whole(self) -> None:
        """Every file of the shared blob directory hashes to its name: no partial or stray file."""
        for name, path in self.blob_files().items():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == name, path

    def files_under_output_prefix(self, target: ImageTarget) -> list[Path]:
        """Whatever `package` wrote for the image, complete or not: its outputs share a prefix."""
        prefix = target.output_prefix(self.dist)
        return sorted(prefix.parent.glob(f"{prefix.name}.*"))

    def substitute(self, relative: str, pattern: str, replacement: str) -> None:
        """Replaces the one match of the regular expression `pattern` in a file of the checkout."""
        path = self.root / relative
        text, count = re.subn(pattern, replacement, path.read_text())
        assert count == 1, f"expected exactly one match of {pattern!r} in {relative}, found {count}"
        path.write_text(text)

    def append(self, relative: str, text: str) -> None:
        with (self.root / relative).open("a") as file:
            file.write(text)


def add_worker_dependency(checkout: Checkout, requirement: str) -> None:
    """Adds `requirement` to `[project].dependencies` of the worker service."""
    checkout.substitute(
        f"{WORKER}/pyproject.toml", r'"structlog>=24\.1",', f'"structlog>=24.1", "{requirement}",'
    )


def image_steps(checkout: Checkout, targets: Sequence[ImageTarget]) -> set[str]:
    """The `Completed:` descriptions of every image-building process of a full build in
    `checkout`, less the uv layer's and the venv layer's, whose descriptions name a platform.
    A service's distribution layers are those of the Python packages in its inventory, and its
    merged layer is in its image's history."""
    steps: set[str] = set()
    for target in targets:
        steps.add(f"Assemble the image {target.address}")
        if target.is_service:
            outputs = checkout.outputs(target)
            inventory = json.loads(outputs.inventory.read_text())
            steps.update(
                f"Install {canonical_name(entry['name'])}=={entry['version']} into a layer"
                for entry in inventory
                if entry["kind"] == "python"
            )
            steps.update(
                f"Build the merged layer of {contents}"
                for contents in outputs.layers_made_by("esb: merged layer")
            )
        else:
            steps.add(f"Assemble the Debian root filesystem of {target.address}")
            steps.add(f"Build the trust/tools layer of {target.address}")
    return steps


def stop_daemons(under: Path) -> None:
    """Stops the daemons that runs started in the copies under `under`: each holds hundreds of
    megabytes and watches its copy's files until stopped."""
    for root in sorted(_DAEMON_ROOTS):
        if root.is_relative_to(under):
            Checkout(root).stop_pantsd()
            _DAEMON_ROOTS.discard(root)


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """An empty temporary directory for copies of the checkout, deleted on exit after their
    daemons are stopped."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        try:
            yield Path(directory)
        finally:
            stop_daemons(under=Path(directory))
