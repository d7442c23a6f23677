"""Load built images into a Docker or Podman engine and run them, through the `docker` SDK.

Only the CLI talks to an engine; this is the one part of the tool that is not a cacheable
build step. The engine is found as its own client finds it: Docker's through `DOCKER_HOST` (or its
default socket), Podman's through `CONTAINER_HOST` (or its default socket for root, or for the
user), whose Docker-compatible API the same SDK speaks. Every failure to talk to it (unreachable,
refused, too slow) is an `EngineError` naming the engine and the fix.
"""

from __future__ import annotations

import argparse
import os
import platform as platform_module
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, Mapping, Sequence, TextIO, Union

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound

from esb_contract import commands, flags
from esb_contract.architectures import ARCHITECTURES
from esb_contract.image_spec import ENV_NAME, Platform
from esb_contract.run_options import DOCKER, ENGINES, PODMAN, PUBLISH, PUBLISH_FORM
from imagetool.commands import AddArguments, Run, read_json
from imagetool.errors import ToolError
from imagetool.oci import OciLayout, write_docker_archive

DOCKER_SOCKET = "unix:///var/run/docker.sock"
PODMAN_ROOT_SOCKET = "unix:///run/podman/podman.sock"
# Seconds the engine may stay silent on one request; the Docker SDK's own default (60) is too
# short for an engine importing a large image.
DEFAULT_TIMEOUT_S = 600
# `docker run`'s status when the container could not be created or started.
ENGINE_FAILURE_STATUS = 125
PROGRESS_INTERVAL_S = 5.0
_MB = 1_000_000


class EngineError(ToolError, RuntimeError):
    """The engine is unreachable or refused a request; the message says which and why."""


@dataclass(frozen=True)
class Engine:
    """The engine to talk to, found as its own client finds it."""

    kind: str
    """One of `ENGINES`."""
    url: str
    """Its API, e.g. `unix:///run/podman/podman.sock`."""
    found: str
    """Where `url` came from, for messages: the variable that names it, or why the default."""
    start: str
    """How to start it or point at one, for messages."""

    def __str__(self) -> str:
        return f"{self.kind.capitalize()} engine at {self.found}"


def find_engine(kind: str, environ: Mapping[str, str], uid: int) -> Engine:
    """The engine of `kind` that the environment names, else the one at its default socket (for
    Podman, root's or the user's service, as `podman system service` places them)."""
    if kind == DOCKER:
        start = (
            "start one and point DOCKER_HOST at it (e.g. "
            '`eval "$(tests/infra/docker-engine.sh env)"` for the test engine), then run '
            "`pants run` again"
        )
        host = environ.get("DOCKER_HOST")
        if host:
            return Engine(kind, host, f"DOCKER_HOST={host}", start)
        return Engine(kind, DOCKER_SOCKET, f"{DOCKER_SOCKET} (DOCKER_HOST is unset)", start)
    if kind != PODMAN:
        raise EngineError(f"{kind!r} is not an engine. Fix: name one of {', '.join(ENGINES)}.")
    host = environ.get("CONTAINER_HOST")
    if host:
        return Engine(
            kind,
            host,
            f"CONTAINER_HOST={host}",
            f"start Podman's API service there (`podman system service --time=0 {host}`), or "
            "point CONTAINER_HOST at one that runs, then run `pants run` again",
        )
    if uid == 0:
        url, whose, unit = PODMAN_ROOT_SOCKET, "root's", "systemctl start podman.socket"
    else:
        runtime_dir = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
        url = f"unix://{runtime_dir}/podman/podman.sock"
        whose, unit = f"uid {uid}'s", "systemctl --user start podman.socket"
    return Engine(
        kind,
        url,
        f"{url} (CONTAINER_HOST is unset: {whose} Podman API socket)",
        f"start Podman's API service (`{unit}`, or `podman system service --time=0 &`), or "
        "point CONTAINER_HOST at one that runs, then run `pants run` again",
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _root_cause(error: BaseException) -> str:
    """The innermost exception of a chain (e.g. `ConnectionRefusedError: ...`), on one line."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        error = inner
    # urllib3 and requests nest the socket's error in their arguments rather than as a cause.
    while error.args and isinstance(error.args[-1], BaseException):
        error = error.args[-1]
    return _one_line(f"{type(error).__name__}: {error}")


@contextmanager
def talking_to_engine(engine: Engine, doing: str, timeout: float, fix: str) -> Iterator[None]:
    """Turn what the SDK raises while `doing` into an `EngineError` naming the engine."""
    try:
        yield
    except requests.exceptions.Timeout:
        raise EngineError(
            f"The {engine} did not answer within {timeout:g} s while {doing}. "
            f"Fix: give it longer, e.g. `pants run --esb-run-timeout={int(timeout) * 4} ...` "
            "(or `timeout` in the `[esb-run]` section of pants.toml), or use a less loaded "
            "engine."
        ) from None
    except APIError as e:
        raise EngineError(
            f"The {engine} refused {doing}: {_one_line(e.explanation)}. " f"Fix: {fix}."
        ) from None
    except (requests.exceptions.RequestException, DockerException) as e:
        raise EngineError(
            f"Cannot reach a {engine} ({_root_cause(e)}) while {doing}. Fix: {engine.start}."
        ) from None


@dataclass(frozen=True)
class BuiltImageFiles:
    layout: Path
    """The image's OCI layout (`<name>.oci`), with the `manifest.json` that `docker load` reads."""
    metadata: Path
    """The image's `<name>.image.json`."""

    def read_metadata(self) -> dict:
        return read_json(self.metadata)


def connect(engine: Engine, timeout: float = DEFAULT_TIMEOUT_S) -> docker.DockerClient:
    with talking_to_engine(engine, "connecting to it", timeout, engine.start):
        if engine.kind == DOCKER:
            # Also takes DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the `docker` CLI does.
            client = docker.from_env(timeout=int(timeout))
        else:
            client = docker.DockerClient(base_url=engine.url, timeout=int(timeout))
        client.ping()
    return client


class ProgressReader:
    """A file as the body of a request, reporting how much of it was sent every `interval`
    seconds (so a long load is visibly alive) and, after such reports, when all was sent."""

    def __init__(
        self,
        file: IO[bytes],
        size: int,
        label: str,
        *,
        timeout: float,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._file, self._size, self._label, self._timeout = file, size, label, timeout
        # sys.stderr when called, not when defined: the CLI's tests capture it.
        self._out, self._clock, self._interval = out or sys.stderr, clock, interval
        self._sent = 0
        self._reported = False
        self._last = clock()

    def __len__(self) -> int:
        # `requests` sends the length as Content-Length and streams the body by `read`.
        return self._size

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._sent += len(data)
        now = self._clock()
        if data and now - self._last >= self._interval:
            self._last = now
            self._reported = True
            percent = 100 * self._sent // max(self._size, 1)
            self._print(
                f"{self._label}: {percent}% sent "
                f"({self._sent / _MB:.1f} of {self._size / _MB:.1f} MB)"
            )
        elif not data and self._reported:
            self._reported = False
            self._print(
                f"{self._label}: all sent; waiting up to {self._timeout:g} s for the engine to "
                "import it"
            )
        return data

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


def host_platform() -> Platform:
    """The platform of this machine's engine, by its kernel's machine name."""
    machine = platform_module.machine()
    for architecture in ARCHITECTURES.values():
        if architecture.machine == machine:
            return Platform(architecture.name)
    raise EngineError(
        f"This machine is a {machine}, for which no image is built; name the platform to run "
        "with `--esb-run-platform`, e.g. `linux/amd64`."
    )


def image_of_platform(metadata: dict, wanted: Platform | None) -> dict:
    """The metadata of the image to run: of an image of several platforms, the one of `wanted`
    (the host's when None); of an image of one platform, the image itself."""
    entries = metadata.get("platforms")
    if entries is None:
        return metadata
    target = wanted or host_platform()
    for entry in entries:
        if Platform.parse(entry["platform"]).matches(target):
            return {**entry, "repository": metadata["repository"], "tags": metadata["tags"]}
    raise EngineError(
        f"The image {metadata['repository']} is built for "
        f"{', '.join(e['platform'] for e in entries)}, not for {target}. Fix: run one of those "
        "with `--esb-run-platform`, or add the platform to the base's `platforms`."
    )


def load_image(
    client: docker.DockerClient,
    image: BuiltImageFiles,
    *,
    engine: Engine,
    platform: Platform | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    out: TextIO | None = None,
    also_named: Sequence[str] = (),
) -> str:
    """Load the image unless the engine has it already; return the image reference it got. Of
    an image of several platforms, the one of `platform` (default: the host's). The engine also
    names it by each `repository:tag` of `also_named` (a registry's local alias)."""
    metadata = image_of_platform(image.read_metadata(), platform)
    reference = f"{metadata['repository']}:{metadata['tags'][0]}" if metadata["tags"] else None
    name = reference or metadata["config_digest"]
    out = out or sys.stderr
    fix = "check the engine's log; the image may need a newer engine"
    with talking_to_engine(engine, f"looking up the image {name}", timeout, fix):
        try:
            present = client.images.get(metadata["config_digest"])
        except ImageNotFound:
            present = None
    if present is None:
        with tempfile.TemporaryFile() as archive:
            write_docker_archive(
                OciLayout(image.layout),
                archive,
                platform=Platform.parse(metadata["platform"]) if "platform" in metadata else None,
                repo_tags=[reference] if reference else [],
            )
            size = archive.tell()
            archive.seek(0)
            label = f"Loading {name}"
            print(
                f"{label} ({size / _MB:.1f} MB) into the {engine}",
                file=out,
                flush=True,
            )
            body = ProgressReader(archive, size, label, timeout=timeout, out=out)
            with talking_to_engine(
                engine, f"loading the image {name} from {image.layout}", timeout, fix
            ):
                loaded = client.images.load(body)
        if not any(i.id == metadata["config_digest"] for i in loaded):
            raise EngineError(
                f"Loading {image.layout} into the {engine} gave "
                f"{[i.id for i in loaded]}, not the image {metadata['config_digest']} that "
                f"{image.metadata} describes. Fix: rebuild it with `pants package` and run again."
            )
    # A name already present may point elsewhere now: re-point it, copying nothing.
    names = [*([reference] if reference and present is not None else []), *also_named]
    if names:
        with talking_to_engine(engine, f"naming the image {name}", timeout, fix):
            image_object = present or client.images.get(metadata["config_digest"])
            for other in names:
                repository, tag = other.rsplit(":", 1)
                image_object.tag(repository, tag)
    return name


PortBinding = Union[int, None, tuple]


def parse_publish(mapping: str) -> tuple[str, PortBinding]:
    """A port to publish (`PUBLISH_FORM`) as the SDK's `ports` item: the container's
    `port/protocol` and the host's port (None: any), or `(ip, port)`."""
    match = PUBLISH.fullmatch(mapping)
    if match is None:
        raise EngineError(
            f"{mapping!r} is not a port to publish. Fix: write it as "
            f"`{PUBLISH_FORM}`, e.g. `8080:8080/tcp` or `9000`."
        )
    container = f"{match['container']}{match['protocol'] or '/tcp'}"
    host = int(match["host"]) if match["host"] else None
    if match["ip"]:
        return container, (match["ip"].strip("[]"), host)
    return container, host


def parse_environment(entries: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """`NAME=VALUE` entries, and `NAME` ones taking the value from `environ` (skipped when it
    has none, as `docker run -e NAME` does)."""
    environment = {}
    for entry in entries:
        name, equals, value = entry.partition("=")
        if not ENV_NAME.fullmatch(name):
            raise EngineError(
                f"{entry!r} is not an environment variable to set. Fix: write it as `NAME=value`, "
                "or `NAME` to pass the variable of that name from the environment of `pants`."
            )
        if equals:
            environment[name] = value
        elif name in environ:
            environment[name] = environ[name]
    return environment


def run_container(
    client: docker.DockerClient,
    image: str,
    *,
    engine: Engine,
    command: Sequence[str],
    environment: Mapping[str, str],
    publish: Sequence[str],
    network: str | None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> int:
    """Run `image` like `docker run --rm`, streaming its output; return its exit status."""
    ports = dict(parse_publish(mapping) for mapping in publish)
    fix = (
        "check the target's `command` (or the arguments after `--` of `pants run`) and `user`, "
        "and the `[esb-run]` options (`network`, `publish`, `env`); a published host port may "
        "be in use (`--no-esb-run-publish-ports` skips the target's `ports`)"
    )
    with talking_to_engine(engine, f"creating a container of {image}", timeout, fix):
        container = client.containers.create(
            image,
            command=list(command) or None,
            environment=dict(environment),
            ports=ports,
            network_mode=network,
        )
    try:
        with talking_to_engine(engine, f"starting a container of {image}", timeout, fix):
            container.start()

        def stop(signum: int, _frame: object) -> None:
            container.stop(timeout=10)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        with talking_to_engine(engine, f"following the container of {image}", timeout, fix):
            for chunk in container.logs(stream=True, follow=True):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            return int(container.wait()["StatusCode"])
    finally:
        try:
            container.remove(force=True)
        except (requests.exceptions.RequestException, DockerException):
            # The engine went away: the failure that caused it is the one to report.
            pass


def _add_run_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load a built image into the Docker engine at DOCKER_HOST, or the Podman one at "
        "CONTAINER_HOST (skipped when the engine has it already), and run it, like "
        "`docker run --rm`; exit with the container's status, or "
        f"{ENGINE_FAILURE_STATUS} when it could not be loaded or started."
    )
    parser.add_argument(
        flags.LAYOUT, type=Path, required=True, help="the image's OCI layout (.oci)"
    )
    parser.add_argument(flags.METADATA, type=Path, required=True, help="the image's .image.json")
    parser.add_argument(
        flags.LOAD_ONLY, action="store_true", help="load the image and print its name; run nothing"
    )
    parser.add_argument(
        flags.LOCAL_NAME,
        action="append",
        default=[],
        help="`repository:tag` the engine also names the image by (repeatable)",
    )
    parser.add_argument(
        flags.PUBLISH,
        action="append",
        default=[],
        metavar="[[IP:]HOST:]CONTAINER[/PROTO]",
        help="publish a container port, like `docker run -p` (repeatable)",
    )
    parser.add_argument(
        flags.ENV,
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set a variable; NAME alone passes this process's variable (repeatable)",
    )
    parser.add_argument(
        flags.ENGINE,
        choices=ENGINES,
        default=DOCKER,
        help="the engine to load into and run in (default: docker)",
    )
    parser.add_argument(flags.NETWORK, help="the container's network, e.g. `none`")
    parser.add_argument(
        flags.PLATFORM,
        help="of an image of several platforms, the one to run, e.g. linux/arm64 (default: the "
        "host's)",
    )
    parser.add_argument(
        flags.TIMEOUT,
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds the engine may stay silent on a request, e.g. while importing the image",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="after `--`: overrides the image's command",
    )


def _run_image(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        environment = parse_environment(args.env, os.environ)
        engine = find_engine(args.engine, os.environ, os.getuid())
        client = connect(engine, args.timeout)
        reference = load_image(
            client,
            BuiltImageFiles(args.layout, args.metadata),
            engine=engine,
            platform=Platform.parse(args.platform) if args.platform else None,
            timeout=args.timeout,
            also_named=args.local_name,
        )
        if args.load_only:
            print(f"Loaded {reference}")
            return 0
        return run_container(
            client,
            reference,
            engine=engine,
            command=command,
            environment=environment,
            publish=args.publish,
            network=args.network,
            timeout=args.timeout,
        )
    except EngineError as e:
        # `docker run`'s status for its own failures, so that it differs from the container's.
        print(e, file=sys.stderr)
        return ENGINE_FAILURE_STATUS


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.RUN_IMAGE: (_add_run_image_arguments, _run_image)
}
