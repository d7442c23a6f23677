"""The registry commands: `pull-image` (a base image, by digest) and `push-image` (a built layout).

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`.
Only these read the environment: `DOCKER_CONFIG` (and the home directory) for the default
Docker config, and `PATH` to find credential helpers unless `--credential-helper-path` says
where. The home directory comes from `HOME`, else from the password database, so a process run
without `HOME` (as Pants runs it, keeping it out of the cache key) still finds
`~/.docker/config.json` of the user it runs as.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esb_contract import commands, flags
from esb_contract.image_spec import SpecError
from imagetool.commands import AddArguments, CommandError, Run, write_json
from imagetool.oci import Descriptor, LoadedImage, OciLayout, Platform
from imagetool.registry.credentials import DockerConfig, default_docker_config_path
from imagetool.registry.pull import pull_image
from imagetool.registry.push import BlobOutcome, push_image, record_push
from imagetool.registry.reference import (
    Reference,
    parse_reference,
    parse_registry,
    parse_repository,
    reference_requiring_digest,
)
from imagetool.registry.transport import (
    RegistryClient,
    RegistryError,
    RegistryOptions,
    RegistryTimeoutError,
    TransientRegistryError,
)
from imagetool.spec import ImageMetadata, LayerSummary


def parse_platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except SpecError as e:
        raise CommandError(f"--platform {e}, e.g. `linux/amd64`.") from e


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.DOCKER_CONFIG,
        type=Path,
        help="the Docker config file with credentials; a leading `~` is the user's home directory "
        "(default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json)",
    )
    parser.add_argument(
        flags.CREDENTIAL_HELPER_PATH,
        metavar="DIRS",
        help="where to look for `docker-credential-*` helpers, as `:`-separated directories "
        "(default: $PATH)",
    )
    parser.add_argument(
        flags.REGISTRY_CA,
        action="append",
        default=[],
        metavar="REGISTRY=PATH",
        help="a PEM CA bundle to trust for REGISTRY, besides the system's (repeatable)",
    )
    parser.add_argument(
        flags.INSECURE_REGISTRY,
        action="append",
        default=[],
        metavar="REGISTRY",
        help="reach REGISTRY over plain HTTP instead of HTTPS (repeatable)",
    )
    parser.add_argument(
        flags.CA_BUNDLE_SETTING,
        default=RegistryOptions.ca_bundle_setting,
        metavar="TEXT",
        help="how the caller gives a registry's CA bundle, for the message of a certificate that "
        "does not verify; `{registry}` stands for the registry (default: %(default)s)",
    )
    parser.add_argument(
        flags.INSECURE_SETTING,
        default=RegistryOptions.insecure_setting,
        metavar="TEXT",
        help="how the caller allows plain HTTP to a registry, for the message of a plain-HTTP "
        "mirror that is not allowed; `{registry}` stands for the registry (default: %(default)s)",
    )
    parser.add_argument(
        flags.CONNECT_TIMEOUT,
        type=_seconds(flags.CONNECT_TIMEOUT),
        default=RegistryOptions.connect_timeout_seconds,
        metavar="SECONDS",
        help="how long to wait for a registry to accept a connection (default: %(default)s)",
    )
    parser.add_argument(
        flags.READ_TIMEOUT,
        type=_seconds(flags.READ_TIMEOUT),
        default=RegistryOptions.read_timeout_seconds,
        metavar="SECONDS",
        help="how long to wait for each answer, or more data, from a registry "
        "(default: %(default)s)",
    )
    for setting, limit, default in (
        (flags.CONNECT_TIMEOUT_SETTING, "connect timeout", RegistryOptions.connect_timeout_setting),
        (flags.READ_TIMEOUT_SETTING, "read timeout", RegistryOptions.read_timeout_setting),
    ):
        parser.add_argument(
            setting,
            default=default,
            metavar="TEXT",
            help=f"how the caller sets the {limit}, for the message of a request that exceeds it "
            "(default: %(default)s)",
        )


def _seconds(option: str) -> Callable[[str], float]:
    """An argparse type: a positive number of seconds."""

    def parse(text: str) -> float:
        try:
            seconds = float(text)
        except ValueError:
            seconds = 0.0
        if not seconds > 0 or seconds == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{option} {text!r} is not a positive number of seconds"
            )
        return seconds

    return parse


def _options(args: argparse.Namespace, mirrors: list[str], **limits: Any) -> RegistryOptions:
    config_path = (
        args.docker_config.expanduser()
        if args.docker_config
        else default_docker_config_path(os.environ, Path.home())
    )
    helper_search_path = args.credential_helper_path or os.environ.get("PATH", os.defpath)
    mirror_urls: dict[str, list[str]] = {}
    for registry, url in (_assignment("--mirror", value) for value in mirrors):
        mirror_urls.setdefault(registry, []).append(url)
    ca_bundles = dict(_assignment("--registry-ca", value) for value in args.registry_ca)
    return RegistryOptions(
        docker_config=DockerConfig.load(config_path, helper_search_path=helper_search_path),
        ca_bundles={registry: Path(path).expanduser() for registry, path in ca_bundles.items()},
        insecure_registries=frozenset(
            parse_registry(registry) for registry in args.insecure_registry
        ),
        mirrors=mirror_urls,
        ca_bundle_setting=args.ca_bundle_setting,
        insecure_setting=args.insecure_setting,
        connect_timeout_seconds=args.connect_timeout,
        read_timeout_seconds=args.read_timeout,
        connect_timeout_setting=args.connect_timeout_setting,
        read_timeout_setting=args.read_timeout_setting,
        **limits,
    )


def _assignment(option: str, value: str) -> tuple[str, str]:
    registry, equals, setting = value.partition("=")
    if not equals or not setting:
        raise CommandError(f"{option} {value!r} is not `REGISTRY=VALUE`.")
    return parse_registry(registry), setting


def _add_pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Pull an image by digest into an OCI layout directory, verifying the manifest and every "
        "blob against its digest; for a multi-platform image, the one for --platform."
    )
    parser.add_argument(
        flags.REFERENCE,
        required=True,
        help="the image, pinned: `[registry/]repository[:tag]@sha256:<digest>`",
    )
    parser.add_argument(
        flags.PLATFORM, required=True, help="`os/architecture[/variant]`, e.g. linux/amd64"
    )
    parser.add_argument(
        flags.OUT_LAYOUT, type=Path, required=True, help="the OCI layout directory to write"
    )
    parser.add_argument(
        flags.CACHE_DIR,
        type=Path,
        help="a directory of blobs by digest, shared between pulls, so that nothing is downloaded twice",
    )
    parser.add_argument(
        flags.OUT_METADATA,
        type=Path,
        help="a JSON file to write the pulled image's metadata to, as `assemble` writes it for an "
        "image it built: digest, config_digest, repository, tags and layers",
    )
    _add_connection_arguments(parser)
    parser.add_argument(
        flags.MIRROR,
        action="append",
        default=[],
        metavar="REGISTRY=URL",
        help="a mirror of REGISTRY (`https://host[:port]`) to pull from first; repeatable, tried in order",
    )


def _pull(args: argparse.Namespace) -> int:
    reference = reference_requiring_digest(args.reference)
    platform = parse_platform(args.platform)
    with RegistryClient(_options(args, args.mirror)) as client:
        result = pull_image(client, reference, platform, args.out_layout, cache_dir=args.cache_dir)
    if args.out_metadata:
        write_json(args.out_metadata, pulled_image_metadata(reference, args.out_layout).to_json())
    print(
        f"Pulled {reference} for {args.platform}: {result.manifest.digest}; "
        f"{result.downloaded} downloaded ({result.bytes_downloaded} bytes), {result.reused} from the cache."
    )
    return 0


def pulled_image_metadata(reference: Reference, layout: Path) -> ImageMetadata:
    """The metadata of the image a pull wrote: its manifest's digest (the pinned digest, or for
    a pinned multi-platform index the digest of the platform's manifest in it), its config's
    digest, its name and tag as referenced, and its layers, bottom first."""
    image = OciLayout(layout).load_image()
    return ImageMetadata(
        digest=image.manifest.digest,
        config_digest=_config_descriptor(image).digest,
        repository=reference.name,
        tags=[reference.tag] if reference.tag else [],
        layers=[LayerSummary(layer.digest, layer.size) for layer in image.layers],
    )


def _config_descriptor(image: LoadedImage) -> Descriptor:
    manifest = image.layout.read_json_blob(image.manifest)
    return Descriptor.from_json(
        manifest["config"], where=f"{image.layout.root}: {image.manifest.digest}"
    )


def _add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Push the image of an OCI layout directory: blobs the repository lacks, then the manifest "
        "by digest, then the tags, so that no tag ever names an incomplete image."
    )
    parser.add_argument(
        flags.LAYOUT, type=Path, required=True, help="the OCI layout holding one image"
    )
    parser.add_argument(
        flags.REFERENCE,
        required=True,
        help="where to push: `registry/repository[:tag]` (a tag given here is pushed too)",
    )
    parser.add_argument(flags.TAG, action="append", default=[], help="a tag to push (repeatable)")
    _add_connection_arguments(parser)
    parser.add_argument(
        flags.MOUNT_FROM,
        action="append",
        default=[],
        metavar="REPOSITORY",
        help="a repository of the same registry to mount blobs from instead of uploading them, e.g. "
        "esb/service-base (repeatable)",
    )
    parser.add_argument(
        flags.CHUNK_SIZE,
        type=int,
        help="upload blobs larger than this many bytes in chunks of it (default: each in one request)",
    )
    parser.add_argument(
        flags.PUSH_DEADLINE,
        type=_seconds("--push-deadline"),
        metavar="SECONDS",
        help="how long the whole push may take, retries included (default: no limit)",
    )
    parser.add_argument(
        flags.PUSH_DEADLINE_SETTING,
        default=RegistryOptions.deadline_setting,
        metavar="TEXT",
        help="how the caller sets the deadline, for the message of a push that exceeds it "
        "(default: %(default)s)",
    )
    parser.add_argument(flags.OUT_STATS, type=Path, help="a JSON file to write what was pushed to")
    parser.add_argument(
        flags.OUT_PUBLISHED,
        type=Path,
        help="a JSON record of pushes to add this one to once it succeeded (registry, repository, "
        "digest, tags, each platform's digest of an index), replacing the repository's earlier "
        "entry; written to a temporary file and renamed into place",
    )


def _push(args: argparse.Namespace) -> int:
    reference = parse_reference(args.reference)
    mount_from = [parse_repository(repository) for repository in args.mount_from]
    if args.chunk_size is not None and args.chunk_size <= 0:
        raise CommandError(f"--chunk-size {args.chunk_size} is not a positive number of bytes.")

    def report(blob: Descriptor, outcome: BlobOutcome) -> None:
        print(f"{blob.digest} ({blob.size} bytes): {outcome.value}", file=sys.stderr)

    def progress(step: str) -> None:
        print(f"{reference.name}: {step}", file=sys.stderr, flush=True)

    options = _options(
        args,
        mirrors=[],
        deadline_seconds=args.push_deadline,
        deadline_setting=args.push_deadline_setting,
    )
    deadline = f", deadline {args.push_deadline:g} s" if args.push_deadline else ""
    progress(
        f"pushing {args.layout} (connect timeout {args.connect_timeout:g} s, read timeout "
        f"{args.read_timeout:g} s{deadline})"
    )
    with RegistryClient(options) as client:
        try:
            result = push_image(
                client,
                args.layout,
                reference,
                tags=args.tag,
                mount_from=mount_from,
                chunk_size=args.chunk_size,
                on_blob=report,
                on_step=progress,
            )
        except RegistryTimeoutError as e:
            raise RegistryError(
                f"Pushing {args.layout} to {reference.name} failed: {str(e).rstrip('.')}. "
                "Every tag pushed so far names a complete image (tags go last)."
            ) from e
        except TransientRegistryError as e:
            # After the retries: say what state the push left, and that repeating it is cheap.
            raise RegistryError(
                f"{str(e).rstrip('.')}. Every tag pushed so far names a complete image (tags go "
                "last). Push again once the registry works: the blobs it has already are not sent "
                "again."
            ) from e
    if args.out_stats:
        write_json(args.out_stats, dataclasses.asdict(result))
    if args.out_published:
        record_push(args.out_published, reference, result)
    print(
        f"Pushed {result.reference} (tags: {', '.join(result.tags) or 'none'}): "
        f"{result.blobs_uploaded} blobs uploaded ({result.bytes_uploaded} bytes), "
        f"{result.blobs_skipped} present, {result.blobs_mounted} mounted."
    )
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.PULL_IMAGE: (_add_pull_arguments, _pull),
    commands.PUSH_IMAGE: (_add_push_arguments, _push),
}
