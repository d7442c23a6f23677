"""Running the built images in the test engine: always with `--network none`, always removed."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import tomllib
from docker import DockerClient
from docker.models.containers import Container
from packaging.requirements import Requirement

CONTAINER_TIMEOUT_S = 120
LOG_POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class ContainerExit:
    status: int
    stdout: str
    stderr: str

    def report(self) -> str:
        return f"exit status {self.status}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_to_exit(
    client: DockerClient,
    image_id: str,
    command: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    **create_options: Any,
) -> ContainerExit:
    """Runs a container of the image (its default command when `command` is None) to its end;
    `create_options` go to `containers.create` (volumes, user, read_only, tmpfs, ...)."""
    container = client.containers.create(
        image_id,
        command,
        environment=dict(environment or {}),
        network_mode="none",
        **create_options,
    )
    try:
        container.start()
        status = container.wait(timeout=CONTAINER_TIMEOUT_S)["StatusCode"]
        return ContainerExit(
            status,
            container.logs(stdout=True, stderr=False).decode(errors="replace"),
            container.logs(stdout=False, stderr=True).decode(errors="replace"),
        )
    finally:
        container.remove(force=True)


@contextmanager
def running_container(
    client: DockerClient,
    image_id: str,
    command: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    **run_options: Any,
) -> Iterator[Container]:
    """A detached container of the image (its default command when `command` is None), with
    `run_options` for `containers.run`; removed afterwards."""
    container = client.containers.run(
        image_id,
        command,
        environment=dict(environment or {}),
        detach=True,
        network_mode="none",
        **run_options,
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def wait_for_log(container: Container, text: str, timeout_s: float = 30) -> str:
    """Waits until `text` appears in the container's output, the container stops or `timeout_s`
    passes; returns the output."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = container.logs().decode(errors="replace")
        container.reload()
        if text in logs or container.status != "running" or time.monotonic() > deadline:
            return logs
        time.sleep(LOG_POLL_INTERVAL_S)


def declared_dependencies(pyproject: Path) -> list[str]:
    """The distribution names of `[project].dependencies`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(spec).name for spec in project["dependencies"]]


# Run by the venv's python with distribution names as arguments. Maps each to the top-level
# modules it installed (from its RECORD: no name is guessed) and imports them, then imports every
# compiled extension module of every distribution in the venv, so that a wheel built for another
# platform or Python fails here. Prints a JSON report; failures are in it, not in the status.
IMPORT_SCRIPT = r"""
import importlib, importlib.machinery, importlib.metadata, json, re, sys
from pathlib import Path

SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)

def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def modules(distribution):
    # (module, is_extension) for each module file the distribution installed.
    for file in distribution.files or ():
        parts = file.parts
        if parts[0] == ".." or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts:
            continue
        if file.name.endswith(".py"):
            stem, is_extension = file.name[:-3], False
        elif file.name.endswith(SUFFIXES):
            stem, is_extension = file.name[: file.name.index(".")], True
        else:
            continue
        yield ".".join([*parts[:-1], stem]).removesuffix(".__init__"), is_extension

venv = {
    normalized(d.metadata["Name"]): d
    for d in importlib.metadata.distributions()
    if Path(d.locate_file("")).is_relative_to(sys.prefix)
}
report = {"top_level": {}, "extensions": [], "failures": {}, "prefix": sys.prefix}

def try_import(module):
    try:
        importlib.import_module(module)
    except Exception as error:
        report["failures"][module] = repr(error)

for name in sys.argv[1:]:
    distribution = venv.get(normalized(name))
    top_level = sorted({m.split(".")[0] for m, _ in modules(distribution)}) if distribution else []
    report["top_level"][name] = top_level
    for module in top_level:
        try_import(module)
for distribution in venv.values():
    for module, is_extension in modules(distribution):
        if is_extension:
            report["extensions"].append(module)
            try_import(module)
report["extensions"].sort()
print(json.dumps(report))
"""


def import_report(
    client: DockerClient,
    image_id: str,
    distributions: Sequence[str],
    platform: str | None = None,
) -> dict[str, Any]:
    """Runs IMPORT_SCRIPT in the image (of `platform`, if not the host's) for `distributions`;
    returns its report."""
    result = run_to_exit(
        client,
        image_id,
        ["/.venv/bin/python", "-c", IMPORT_SCRIPT, *distributions],
        platform=platform,
    )
    assert result.status == 0, result.report()
    return json.loads(result.stdout)


def http_get_script(url: str) -> str:
    """Python that GETs `url` from inside a container, whose network is its own (`none`),
    retrying for 30 s while the server starts; it prints the status, then the body."""
    return f"""
import time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen({url!r}, timeout=5) as response:
            print(response.status)
            print(response.read().decode())
            break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
"""


# Asks the API from inside its own container, retrying while uvicorn starts.
HEALTHZ_SCRIPT = http_get_script("http://127.0.0.1:8080/healthz")


def exec_python(container: Container, script: str, *args: str) -> str:
    """Runs `python -c script args` in the running container; returns its output, asserting
    that it exited with 0 (the message has its output and the container's log)."""
    exit_code, (stdout, stderr) = container.exec_run(["python", "-c", script, *args], demux=True)
    output = (stdout or b"").decode()
    assert exit_code == 0, f"{output}{(stderr or b'').decode()}\n{container.logs().decode()}"
    return output


CA_DIR = "/etc/esb/ca-certificates"
MARKER = "the command ran"
MARKER_COMMAND = ["python3", "-c", f"print({MARKER!r})"]


def run_with_a_garbage_ca(
    client: DockerClient, image_id: str, scratch: Path, **create_options: Any
) -> ContainerExit:
    """Runs MARKER_COMMAND with `REQUIRE_CA_TRUST=true` and a file that is no certificate in the
    trust directory: the entrypoint must stop before the command."""
    garbage = scratch / "garbage.crt"
    garbage.write_text("this is not a certificate\n")
    garbage.chmod(0o644)
    return run_to_exit(
        client,
        image_id,
        MARKER_COMMAND,
        environment={"REQUIRE_CA_TRUST": "true"},
        volumes={str(garbage): {"bind": f"{CA_DIR}/garbage.crt", "mode": "ro"}},
        **create_options,
    )


def assert_stopped_by_the_garbage_ca(result: ContainerExit) -> None:
    assert result.status == 1, result.report()
    assert MARKER not in result.stdout, result.report()
    assert f"rejected {CA_DIR}/garbage.crt: no PEM certificate" in result.stderr, result.report()
    assert "ensure_ca_trust: error: REQUIRE_CA_TRUST=true" in result.stderr, result.report()
