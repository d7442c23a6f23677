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
from pants.util.frozendict import FrozenDict

from esb.goals.package import (
    EsbBaseImageFieldSet,
    EsbServiceImageFieldSet,
    built_image,
    image_naming,
)
from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import PublishDestination, PushLimits, RegistriesSubsystem
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
from esb.util_rules.image_refs import RegistryRefs, destinations_of, image_refs
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
    """The images of a base and of the services on it, the base's first: each target's address
    and repository name."""

    members: FrozenDict[Address, str]

    def mount_sources(self, destination: PublishDestination, address: Address) -> tuple[str, ...]:
        """Where on `destination` the image of `address` may find blobs it lacks: the paths of
        the other images of the family there."""
        paths = {
            member: destination.path(destination.image_repository(repository, member))
            for member, repository in self.members.items()
        }
        return tuple(path for path in dict.fromkeys(paths.values()) if path != paths[address])


@rule
async def image_family(
    request: ImageFamilyRequest, all_targets: AllTargets, registries: RegistriesSubsystem
) -> ImageFamily:
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
    default = registries.default_repository
    on_base = sorted(
        (service.address, service[EsbImageRepositoryField].image_repository(default))
        for service, resolved in zip(services, bases)
        if resolved.address == request.base
    )
    base_repository = base.target[EsbImageRepositoryField].image_repository(default)
    return ImageFamily(FrozenDict([(request.base, base_repository), *on_base]))


def push_argv(
    layout: str,
    refs: RegistryRefs,
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
        refs.name,
        flags.OUT_PUBLISHED,
        record,
        *(arg for tag in refs.tags for arg in (flags.TAG, tag)),
        *(arg for source in mount_sources for arg in (flags.MOUNT_FROM, source)),
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
    address = field_set.address
    repository = field_set.repository.image_repository(registries.default_repository)
    if field_set.skip_push.value:
        # Before the registries are read: a skipped image needs none configured.
        return _skipped(repository, f"`{field_set.skip_push.alias}`", address)
    naming = image_naming(field_set)
    destinations = destinations_of(naming, registries, strict=True)
    if not destinations:
        return _skipped(repository, f"`{field_set.registries.alias}=[]`", address)
    skipped = [
        PublishPackages(
            names=(destination.name(destination.image_repository(repository, address)),),
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
        else address
    )
    # Pushed from the image as built: `package`'s digest does not hold the blobs of `dist/`.
    image = await built_image(field_set)
    # After the build, as `package` does (see there).
    await Get(UniqueImage, UniqueImageRequest(address))
    family = await Get(ImageFamily, ImageFamilyRequest(family_base))
    digest = image.metadata["digest"]
    # Every destination here is a registry: each ref has one.
    pushes = [
        (ref, ref.destination)
        for ref in await image_refs(naming, destinations, registries, digest, strict=True)
        if ref.destination
    ]
    inputs = await Get(Digest, MergeDigests([image.digest, await connection_inputs(connection)]))
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
                    IMAGE_LAYOUT,
                    ref,
                    family.mount_sources(destination, address),
                    connection,
                    registries.push_limits,
                    record,
                ),
                description=f"Push {ref.repository} to {destination.description}",
                input_digest=inputs,
                needs_network_trust=True,
            ),
        )
        for ref, destination in pushes
    )
    return PublishProcesses(
        [
            *(
                PublishPackages(
                    names=tuple(f"{ref.name}:{tag}" for tag in ref.tags)
                    or (f"{ref.name}@{digest}",),
                    # Interactive: the tool's progress and errors go straight to the console, and an
                    # interactive process is never cached.
                    process=InteractiveProcess.from_process(process),
                    description=destination.description,
                    data=PublishOutputData(
                        {"publisher": "esb", "registry": destination.address, "digest": digest}
                    ),
                )
                for (ref, destination), process in zip(pushes, processes)
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
