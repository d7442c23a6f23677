"""`pants publish` for image targets: push each packaged image to its registries.

One push per image and registry: the image tool's `push-image` on the OCI layout `package` built,
run as an `InteractiveProcess` (never cached: a push has effects outside the build). The tool
sends only the blobs the repository lacks (each checked with HEAD, or mounted from another
repository of the registry), then the manifest by digest, then the tags: an interrupted push
leaves no tag on an incomplete image, and running it again sends nothing twice.

Pants 2.17's `publish` goal runs targets in no particular order, so a base cannot be relied on
to go first. Instead every image may mount blobs from all the repositories of its family (its
base and the services on that base): whichever image of the family is pushed first uploads the
base's layers, and every later one mounts them, so publishing ten services on one base uploads
the base once. The same goes for the distribution layers services share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pants.base.build_root import BuildRoot
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address
from pants.engine.fs import (
    Digest,
    MergeDigests,
)
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllTargets, WrappedTarget, WrappedTargetRequest

from esb.goals.package import EsbBaseImageFieldSet, EsbServiceImageFieldSet, built_image
from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import (
    PublishDestination,
    PushLimits,
    RegistriesSubsystem,
    publish_destinations,
)
from esb.target_types import (
    EsbImageRegistriesField,
    EsbImageRepositoryField,
    EsbImageSkipPushField,
    EsbServiceBaseField,
    EsbServiceImageTarget,
)
from esb.util_rules import image_tags
from esb.util_rules.collisions import UniqueImage, UniqueImageRequest
from esb.util_rules.dependencies import ResolvedBaseAddress
from esb.util_rules.image import IMAGE_LAYOUT
from esb.util_rules.image_tags import fill_in_tags, tag_values
from esb.util_rules.upstream import RegistryConnection, connection_argv, connection_inputs
from esb_contract import commands, flags

PUBLISHED_SUFFIX = ".published.json"
"""Under `dist/`, beside the image's `package` outputs: what `publish` pushed, per registry and
repository (the image tool's `record_push` writes it, once the push succeeded)."""


class PublishImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishBaseImageFieldSet(EsbBaseImageFieldSet, PublishFieldSet):
    publish_request_type = PublishImageRequest

    skip_push: EsbImageSkipPushField


@dataclass(frozen=True)
class PublishServiceImageFieldSet(EsbServiceImageFieldSet, PublishFieldSet):
    publish_request_type = PublishImageRequest

    skip_push: EsbImageSkipPushField
    base: EsbServiceBaseField


@dataclass(frozen=True)
class ImageFamilyRequest:
    base: Address


@dataclass(frozen=True)
class ImageFamily:
    """The repositories of a base image and of the services on it: the base's first."""

    repositories: tuple[str, ...]

    def mount_sources(self, repository: str) -> tuple[str, ...]:
        """Where an image of the family may find blobs it lacks: the others' repositories."""
        return tuple(r for r in self.repositories if r != repository)


@rule
async def image_family(request: ImageFamilyRequest, all_targets: AllTargets) -> ImageFamily:
    # An image with `registries=[]` or `skip_push` is never pushed, so it has no blobs to mount.
    services = [
        t
        for t in all_targets
        if isinstance(t, EsbServiceImageTarget)
        and t[EsbImageRegistriesField].value != ()
        and not t[EsbImageSkipPushField].value
    ]
    bases = await MultiGet(
        Get(ResolvedBaseAddress, EsbServiceBaseField, t[EsbServiceBaseField]) for t in services
    )
    base = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.base, description_of_origin="the images to publish"),
    )
    on_base = sorted(
        {
            service[EsbImageRepositoryField].value_or_default()
            for service, resolved in zip(services, bases)
            if resolved.address == request.base
        }
    )
    base_repository = base.target[EsbImageRepositoryField].value_or_default()
    return ImageFamily(tuple(dict.fromkeys([base_repository, *on_base])))


def push_argv(
    layout: str,
    destination: PublishDestination,
    repository: str,
    tags: tuple[str, ...],
    mount_sources: tuple[str, ...],
    connection: RegistryConnection,
    limits: PushLimits,
    record: str,
) -> tuple[str, ...]:
    return (
        commands.PUSH_IMAGE,
        flags.LAYOUT,
        layout,
        flags.REFERENCE,
        destination.name(repository),
        flags.OUT_PUBLISHED,
        record,
        *(arg for tag in tags for arg in (flags.TAG, tag)),
        *(
            arg
            for source in mount_sources
            for arg in (flags.MOUNT_FROM, destination.repository(source))
        ),
        *connection_argv(connection, mirrors=False),
        *limits_argv(limits),
    )


def limits_argv(limits: PushLimits) -> tuple[str, ...]:
    """The push's timeouts and deadline, and the options that set them for the tool's messages."""
    argv: list[str] = []
    for limit, tool_option, setting_option in (
        ("connect_timeout", flags.CONNECT_TIMEOUT, flags.CONNECT_TIMEOUT_SETTING),
        ("read_timeout", flags.READ_TIMEOUT, flags.READ_TIMEOUT_SETTING),
        ("deadline", flags.PUSH_DEADLINE, flags.PUSH_DEADLINE_SETTING),
    ):
        argv += [
            tool_option,
            f"{getattr(limits, limit):g}",
            setting_option,
            RegistriesSubsystem.push_limit_setting(limit),
        ]
    return tuple(argv)


def _skipped(repository: str, reason: str, address: Address) -> PublishProcesses:
    """What `publish` reports for an image it does not push: skipped, and why."""
    return PublishProcesses(
        [PublishPackages(names=(repository,), description=f"(by {reason} on {address})")]
    )


@rule
async def publish_image(
    request: PublishImageRequest,
    registries: RegistriesSubsystem,
    connection: RegistryConnection,
    dist_dir: DistDir,
    build_root: BuildRoot,
) -> PublishProcesses:
    field_set = request.field_set
    repository = field_set.repository.value_or_default()
    if field_set.skip_push.value:
        # Before the registries are read: a skipped image needs none configured.
        return _skipped(repository, f"`{field_set.skip_push.alias}`", field_set.address)
    destinations = publish_destinations(
        field_set.registries, field_set.address, registries.publish_registries
    )
    if not destinations:
        return _skipped(repository, f"`{field_set.registries.alias}=[]`", field_set.address)
    skipped = [
        PublishPackages(
            names=(destination.name(repository),),
            description=f"(by `skip_push` on registry {destination.description})",
        )
        for destination in destinations
        if destination.skip_push
    ]
    destinations = tuple(destination for destination in destinations if not destination.skip_push)
    if not destinations:
        return PublishProcesses(skipped)

    family_base = (
        (await Get(ResolvedBaseAddress, EsbServiceBaseField, field_set.base)).address
        if isinstance(field_set, PublishServiceImageFieldSet)
        else field_set.address
    )
    # Pushed from the image as built: `package`'s digest does not hold the blobs of `dist/`.
    image = await built_image(field_set)
    # After the build, as `package` does (see there).
    await Get(UniqueImage, UniqueImageRequest(field_set.address))
    family = await Get(ImageFamily, ImageFamilyRequest(family_base))
    layout, layout_digest = IMAGE_LAYOUT, image.digest
    digest = image.metadata["digest"]
    values = await tag_values(
        field_set.tags,
        field_set.address,
        isinstance(field_set, PublishServiceImageFieldSet),
        digest,
        strict=True,
    )
    tags = fill_in_tags(field_set.tags, field_set.address, values)
    inputs = await Get(Digest, MergeDigests([layout_digest, await connection_inputs(connection)]))
    # Written by the tool once its push succeeded, outside the sandbox: after an interactive
    # process, Pants writes nothing back.
    record = os.path.join(
        build_root.path,
        dist_dir.relpath,
        f"{field_set.output_path.value_or_default(file_ending=None)}{PUBLISHED_SUFFIX}",
    )
    processes = await MultiGet(
        Get(
            Process,
            ImageToolRequest(
                argv=push_argv(
                    layout,
                    destination,
                    repository,
                    tags,
                    family.mount_sources(repository),
                    connection,
                    registries.push_limits,
                    record,
                ),
                description=f"Push {repository} to {destination.description}",
                input_digest=inputs,
                needs_network_trust=True,
            ),
        )
        for destination in destinations
    )
    return PublishProcesses(
        [
            *(
                PublishPackages(
                    names=tuple(f"{destination.name(repository)}:{tag}" for tag in tags)
                    or (f"{destination.name(repository)}@{digest}",),
                    # Interactive: the tool's progress and errors go straight to the console, and an
                    # interactive process is never cached.
                    process=InteractiveProcess.from_process(process),
                    description=destination.description,
                    data=PublishOutputData(
                        {"publisher": "esb", "registry": destination.address, "digest": digest}
                    ),
                )
                for destination, process in zip(destinations, processes)
            ),
            *skipped,
        ]
    )


def rules():
    return [
        *collect_rules(),
        *image_tags.rules(),
        *PublishBaseImageFieldSet.rules(),
        *PublishServiceImageFieldSet.rules(),
    ]
