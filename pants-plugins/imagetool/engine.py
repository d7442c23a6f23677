"""Load built images into a Docker engine and run them, through the `docker` SDK.

Only the CLI talks to an engine; this is the one part of the tool that is not a cacheable
build step, and the engine is whatever `DOCKER_HOST` (or the default socket) names.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from imagetool.commands import AddArguments, Run, read_json
from imagetool.errors import ToolError
from imagetool.oci import OciLayout, write_docker_archive


class EngineError(ToolError, RuntimeError):
    """The engine is unreachable or refused a request; the message says which and why."""


@dataclass(frozen=True)
class BuiltImageFiles:
    layout: Path
    """The image's OCI layout (`<name>.oci`), with the `manifest.json` that `docker load` reads."""
    metadata: Path
    """The image's `<name>.image.json`."""

    def read_metadata(self) -> dict:
        return read_json(self.metadata)


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as e:
        raise EngineError(
            f"Cannot reach a Docker engine ({e}). Start one, and point DOCKER_HOST at it "
            "(e.g. `eval \"$(tests/infra/docker-engine.sh env)\"` for the test engine)."
        ) from e
    return client


def load_image(client: docker.DockerClient, image: BuiltImageFiles) -> str:
    """Load the image unless the engine has it already; return the image reference it got."""
    metadata = image.read_metadata()
    reference = f"{metadata['repository']}:{metadata['tags'][0]}" if metadata["tags"] else None
    try:
        present = client.images.get(metadata["config_digest"])
    except ImageNotFound:
        present = None
    if present is None:
        with tempfile.TemporaryFile() as archive:
            write_docker_archive(OciLayout(image.layout), archive)
            archive.seek(0)
            try:
                loaded = client.images.load(archive)
            except APIError as e:
                raise EngineError(f"The engine refused to load {image.layout}: {e.explanation}") from e
        if not any(i.id == metadata["config_digest"] for i in loaded):
            raise EngineError(
                f"Loading {image.layout} gave {[i.id for i in loaded]}, not the image "
                f"{metadata['config_digest']} that {image.metadata} describes."
            )
    elif reference:
        # Same content under a name that may point elsewhere now: re-point it, copying nothing.
        repository, tag = reference.rsplit(":", 1)
        present.tag(repository, tag)
    return reference or metadata["config_digest"]


def run_container(
    client: docker.DockerClient,
    image: str,
    *,
    command: Sequence[str],
    environment: Mapping[str, str],
    publish: Sequence[str],
    network: str | None,
) -> int:
    """Run `image` like `docker run --rm`, streaming its output; return its exit status."""
    ports = {}
    for mapping in publish:
        host, _, container = mapping.rpartition(":")
        ports[container if "/" in container else f"{container}/tcp"] = int(host) if host else None
    try:
        container = client.containers.run(
            image,
            command=list(command) or None,
            environment=dict(environment),
            ports=ports,
            network_mode=network,
            detach=True,
        )
    except APIError as e:
        raise EngineError(f"The engine refused to run {image}: {e.explanation}") from e

    def stop(signum: int, _frame: object) -> None:
        container.stop(timeout=10)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for chunk in container.logs(stream=True, follow=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def _add_run_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load a built image into the Docker engine at DOCKER_HOST (skipped when the engine has "
        "it already) and run it, like `docker run --rm`."
    )
    parser.add_argument("--layout", type=Path, required=True, help="the image's OCI layout (.oci)")
    parser.add_argument("--metadata", type=Path, required=True, help="the image's .image.json")
    parser.add_argument(
        "--load-only", action="store_true", help="load the image and print its name; run nothing"
    )
    parser.add_argument(
        "--publish",
        action="append",
        default=[],
        metavar="[HOST:]CONTAINER[/PROTO]",
        help="publish a container port, like `docker run -p` (repeatable)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="set a variable (repeatable)"
    )
    parser.add_argument("--network", help="the container's network, e.g. `none`")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="overrides the image's command")


def _run_image(args: argparse.Namespace) -> int:
    client = connect()
    reference = load_image(client, BuiltImageFiles(args.layout, args.metadata))
    if args.load_only:
        print(f"Loaded {reference}")
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    environment = dict(entry.split("=", 1) for entry in args.env)
    return run_container(
        client,
        reference,
        command=command,
        environment=environment,
        publish=args.publish,
        network=args.network,
    )


COMMANDS: dict[str, tuple[AddArguments, Run]] = {"run-image": (_add_run_image_arguments, _run_image)}
