"""`pants run` for image targets: load the image into the local Docker engine and run it."""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPex, VenvPexRequest
from pants.backend.python.util_rules.pex_environment import PexEnvironment
from pants.core.goals.run import RunFieldSet, RunInSandboxBehavior, RunRequest
from pants.engine.fs import Digest, DigestSubset, MergeDigests, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.option.option_types import BoolOption, IntOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text, softwrap

from esb.compat import pex_environment_dict
from esb.goals.package import (
    EsbBaseImageFieldSet,
    EsbServiceImageFieldSet,
    built_image,
    image_naming,
)
from esb.subsystems.image_tool import ImageToolPexRequest
from esb.subsystems.registries import RegistriesSubsystem
from esb.target_types import EsbServicePortsField
from esb.util_rules.image import IMAGE_LAYOUT, IMAGE_METADATA, BuiltImage
from esb.util_rules.image_refs import destinations_of, image_refs
from esb_contract import commands, flags
from esb_contract.commands import read_argv
from esb_contract.image_spec import ENV_NAME, Platform, SpecError
from esb_contract.run_options import DOCKER, ENGINES, PODMAN, PUBLISH, PUBLISH_FORM


class EsbRunSubsystem(Subsystem):
    options_scope = "esb-run"
    help = help_text(
        """
        How `pants run` starts an image target: it loads the image into the engine that `engine`
        picks (skipped when the engine has it already), then runs it like `docker run --rm`, with the image's entrypoint and command; arguments after `--` replace
        the command. `pants run` exits with the container's status, or 125 (as `docker run`)
        with a one-line message when the image could not be loaded or the container started.
        """
    )

    engine = StrOption(
        default=DOCKER,
        help=softwrap(
            f"""
            The engine to load the image into and run it in, through the Docker API it serves:
            `{DOCKER}`, at `DOCKER_HOST` (default `unix:///var/run/docker.sock`), or `{PODMAN}`,
            at `CONTAINER_HOST` (default: root's `/run/podman/podman.sock`, a user's
            `$XDG_RUNTIME_DIR/podman/podman.sock`, where `systemctl [--user] start podman.socket`
            or `podman system service` serve it).
            """
        ),
    )
    network = StrOption(
        default=None,
        help=(
            "The container's network (`docker run --network`), e.g. `none`. Default: the "
            "engine's."
        ),
    )
    publish_ports = BoolOption(
        default=True,
        help="Publish the target's `ports` on the same host ports (`docker run -p 8080:8080`).",
    )
    load_only = BoolOption(
        default=False, help="Load the image into the engine and print its name; run nothing."
    )
    env = StrListOption(
        help=softwrap(
            """
            Environment variables of the container, besides the image's: `NAME=value`, or
            `NAME` to pass the variable of that name from the environment `pants` runs in
            (left out when unset, as `docker run -e NAME`), e.g.
            `--esb-run-env="['LOG_LEVEL=debug', 'API_TOKEN']"`.
            """
        ),
    )
    publish = StrListOption(
        help=softwrap(
            """
            More ports to publish, as `docker run -p` takes them:
            `[[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, e.g. `['9090:8080/tcp']`. Added to the
            target's `ports` (unless `--no-esb-run-publish-ports`).
            """
        ),
    )
    platform = StrOption(
        default=None,
        help=softwrap(
            """
            Of an image built for several platforms (its base's `platforms`), the one to run,
            e.g. `linux/arm64` (another than the host's runs only under emulation, such as
            QEMU registered with the engine). Default: the host's.
            """
        ),
    )
    timeout = IntOption(
        default=600,
        help=softwrap(
            """
            Seconds the engine may stay silent on one request before `pants run` gives up, above
            all while it imports a large image (a load reports its progress meanwhile).
            """
        ),
    )


@dataclass(frozen=True)
class EsbServiceImageRunFieldSet(EsbServiceImageFieldSet, RunFieldSet):
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED

    ports: EsbServicePortsField


@dataclass(frozen=True)
class EsbBaseImageRunFieldSet(EsbBaseImageFieldSet, RunFieldSet):
    run_in_sandbox_behavior = RunInSandboxBehavior.NOT_SUPPORTED


class EsbRunOptionError(ValueError):
    """An `[esb-run]` option's value that `pants run` cannot use."""


def _check_options(subsystem: EsbRunSubsystem) -> None:
    for option, is_valid, form in (
        ("publish", PUBLISH.fullmatch, f"`{PUBLISH_FORM}`, e.g. `9090:8080/tcp`"),
        (
            "env",
            lambda value: ENV_NAME.fullmatch(value.split("=", 1)[0]),
            "`NAME=value`, or `NAME` to pass the variable from the environment",
        ),
    ):
        bad = [value for value in getattr(subsystem, option) if not is_valid(value)]
        if bad:
            raise EsbRunOptionError(
                f"The `[esb-run].{option}` option has {', '.join(map(repr, bad))}.\n\n"
                f"Fix: write each as {form} (`--esb-run-{option}` on the command line, or "
                f"`{option}` in the `[esb-run]` section of pants.toml)."
            )
    if subsystem.engine not in ENGINES:
        raise EsbRunOptionError(
            f"The `[esb-run].engine` option, {subsystem.engine!r}, is not an engine `pants run` "
            f"talks to.\n\nFix: name one of {', '.join(map(repr, ENGINES))}, e.g. "
            f"`--esb-run-engine={PODMAN}` (or `engine` in the `[esb-run]` section of pants.toml)."
        )
    if subsystem.platform is not None:
        try:
            Platform.parse(subsystem.platform)
        except SpecError:
            raise EsbRunOptionError(
                f"The `[esb-run].platform` option, {subsystem.platform!r}, is not a platform "
                "`os/architecture[/variant]`.\n\n"
                "Fix: name one as Docker does, e.g. `--esb-run-platform=linux/arm64`."
            ) from None
    if subsystem.timeout <= 0:
        raise EsbRunOptionError(
            f"The `[esb-run].timeout` option is {subsystem.timeout}, not a number of seconds.\n\n"
            "Fix: set it above 0, e.g. `--esb-run-timeout=600`."
        )


def run_image_args(
    tool_argv0: str,
    ports: tuple[str, ...],
    subsystem: EsbRunSubsystem,
    local_names: tuple[str, ...] = (),
) -> tuple[str, ...]:
    _check_options(subsystem)
    args = [
        f"{{chroot}}/{tool_argv0}",
        commands.RUN_IMAGE,
        flags.LAYOUT,
        f"{{chroot}}/{IMAGE_LAYOUT}",
        flags.METADATA,
        f"{{chroot}}/{IMAGE_METADATA}",
        flags.ENGINE,
        subsystem.engine,
    ]
    if subsystem.load_only:
        args.append(flags.LOAD_ONLY)
    for name in local_names:
        args += [flags.LOCAL_NAME, name]
    if subsystem.network:
        args += [flags.NETWORK, subsystem.network]
    if subsystem.platform:
        args += [flags.PLATFORM, subsystem.platform]
    if subsystem.publish_ports:
        for port in ports:
            args += [flags.PUBLISH, f"{port.split('/')[0]}:{port}"]
    for mapping in subsystem.publish:
        args.append(f"{flags.PUBLISH}={mapping}")
    for entry in subsystem.env:
        args.append(f"{flags.ENV}={entry}")
    args += [flags.TIMEOUT, str(subsystem.timeout)]
    # `pants run <target> -- <args>` appends `<args>` (without the `--`): after this `--`, the
    # tool takes them all as the command, even those that look like its own options.
    args.append("--")
    # Read as the tool will read it: a flag it does not take fails here, not in the engine.
    read_argv(args[1:])
    return tuple(args)


async def local_names(
    field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet,
    image: BuiltImage,
    registries: RegistriesSubsystem,
) -> tuple[str, ...]:
    """The names the engine also gives the image: under the alias of each of its registries
    whose entry sets `use_local_alias`, as Pants' `docker_image` has `pants run` name it."""
    naming = image_naming(field_set)
    destinations = destinations_of(naming, registries, strict=False)
    if not any(destination.uses_local_alias for destination in destinations):
        return ()
    refs = await image_refs(
        naming, destinations, registries, image.metadata["digest"], strict=False
    )
    return tuple(f"{ref.local_alias}:{tag}" for ref in refs if ref.local_alias for tag in ref.tags)


async def _run_request(
    field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet,
    ports: tuple[str, ...],
    subsystem: EsbRunSubsystem,
    pex_env: PexEnvironment,
    registries: RegistriesSubsystem,
) -> RunRequest:
    image = await built_image(field_set)
    tool_request = await Get(ImageToolPexRequest)
    complete_env = pex_env.in_workspace()
    tool, files = await MultiGet(
        Get(VenvPex, VenvPexRequest(tool_request.pex_request, complete_env)),
        Get(Digest, DigestSubset(image.digest, PathGlobs([f"{IMAGE_LAYOUT}/**", IMAGE_METADATA]))),
    )
    names = await local_names(field_set, image, registries)
    return RunRequest(
        digest=await Get(Digest, MergeDigests([tool.digest, files])),
        args=run_image_args(tool.pex.argv0, ports, subsystem, names),
        extra_env=pex_environment_dict(complete_env),
        append_only_caches={
            **complete_env.append_only_caches,
            **(tool.append_only_caches or FrozenDict()),
        },
    )


@rule
async def run_service_image(
    field_set: EsbServiceImageRunFieldSet,
    subsystem: EsbRunSubsystem,
    pex_env: PexEnvironment,
    registries: RegistriesSubsystem,
) -> RunRequest:
    return await _run_request(
        field_set, field_set.ports.normalized(), subsystem, pex_env, registries
    )


@rule
async def run_base_image(
    field_set: EsbBaseImageRunFieldSet,
    subsystem: EsbRunSubsystem,
    pex_env: PexEnvironment,
    registries: RegistriesSubsystem,
) -> RunRequest:
    return await _run_request(field_set, (), subsystem, pex_env, registries)


def rules():
    return [
        *collect_rules(),
        *EsbServiceImageRunFieldSet.rules(),
        *EsbBaseImageRunFieldSet.rules(),
    ]
