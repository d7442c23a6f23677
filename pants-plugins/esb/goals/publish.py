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

from dataclasses import dataclass
from typing import Mapping, Optional

from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.core.goals.publish import (
    PublishFieldSet,
    PublishOutputData,
    PublishPackages,
    PublishProcesses,
    PublishRequest,
)
from pants.core.util_rules.system_binaries import GitBinaryException
from pants.engine.addresses import Address
from pants.engine.fs import (
    Digest,
    DigestContents,
    MergeDigests,
    PathGlobs,
)
from pants.engine.process import InteractiveProcess, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllTargets, WrappedTarget, WrappedTargetRequest
from pants.vcs.git import GitWorktreeRequest, MaybeGitWorktree

from esb.goals.package import EsbBaseImageFieldSet, EsbServiceImageFieldSet, built_image
from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import (
    PublishDestination,
    PublishError,
    PushLimits,
    RegistriesSubsystem,
    publish_destinations,
)
from esb.target_types import (
    SERVICE_PYPROJECT_FILE,
    TAG_PLACEHOLDER,
    EsbBaseImageTarget,
    EsbImageRegistriesField,
    EsbImageRepositoryField,
    EsbImageSkipPushField,
    EsbImageTagsField,
    EsbServiceBaseField,
    EsbServiceImageTarget,
)
from esb.toml_files import TomlError, parse_toml
from esb.util_rules.collisions import UniqueImage, UniqueImageRequest
from esb.util_rules.dependencies import ResolvedBaseAddress
from esb.util_rules.image import IMAGE_LAYOUT
from esb.util_rules.service import in_service
from esb.util_rules.upstream import RegistryConnection, connection_argv, connection_inputs
from esb_contract import commands, flags

DIGEST_TAG_LENGTH = 12
"""`{digest}` is this many hex digits of the manifest digest, as Docker shortens image IDs."""


class PublishImageRequest(PublishRequest):
    pass


@dataclass(frozen=True)
class PublishBaseImageFieldSet(EsbBaseImageFieldSet, PublishFieldSet):
    publish_request_type = PublishImageRequest

    tags: EsbImageTagsField
    registries: EsbImageRegistriesField
    skip_push: EsbImageSkipPushField


@dataclass(frozen=True)
class PublishServiceImageFieldSet(EsbServiceImageFieldSet, PublishFieldSet):
    publish_request_type = PublishImageRequest

    tags: EsbImageTagsField
    registries: EsbImageRegistriesField
    skip_push: EsbImageSkipPushField
    base: EsbServiceBaseField


def fill_in_tags(
    field: EsbImageTagsField, address: Address, values: Mapping[str, str]
) -> tuple[str, ...]:
    """The tags of the target at `address` with their placeholders filled in from `values`, each
    tag once."""
    tags = []
    for template in field.value or ():
        tag = TAG_PLACEHOLDER.sub(lambda match: values[match[1]], template)
        if not EsbImageTagsField.is_valid(tag):
            raise PublishError(
                f"The `{field.alias}` field of the target {address} has the tag "
                f"{template!r}, which becomes {tag!r}: not a valid tag (at most 128 letters, "
                "digits, '_', '.' and '-', not starting with '.' or '-').\n\nFix: use placeholders "
                "whose values fit (e.g. a version without '+'), or a literal tag."
            )
        tags.append(tag)
    return tuple(dict.fromkeys(tags))


def project_version(pyproject: bytes, path: str, address: Address) -> str:
    """`[project].version` of a service's pyproject.toml, for `{version}` in its tags."""
    where = f"The `{EsbImageTagsField.alias}` field of the target {address} uses {{version}}"
    try:
        project = parse_toml(pyproject).get("project", {})
    except TomlError as e:
        raise PublishError(
            f"{where}, but {path} is not valid TOML: {e}.\n\nFix: correct {path}."
        ) from None
    version = project.get("version") if isinstance(project, dict) else None
    if not isinstance(version, str) or not version:
        dynamic = isinstance(project, dict) and "version" in (project.get("dynamic") or ())
        problem = "declares `version` as dynamic" if dynamic else "sets no `[project].version`"
        raise PublishError(
            f'{where}, but {path} {problem}.\n\nFix: set `version = "1.2.3"` under `[project]` '
            f"in {path}, or remove {{version}} from the tag."
        )
    return version


@dataclass(frozen=True)
class GitHeadRequest:
    pass


@dataclass(frozen=True)
class GitHead:
    """What `{git_commit}` may stand for: the commit checked out at the build root, and whether
    the working tree still is that commit."""

    worktree: Optional[str] = None
    """None: Pants finds no git repository (or no `git`) at the build root."""
    commit: Optional[str] = None
    """None with a worktree: git names no commit checked out, for the reason in `git_error`."""
    git_error: Optional[str] = None
    uncommitted: tuple[str, ...] = ()
    """Files that differ from the commit: modified, staged, deleted, or new and not ignored."""


@rule
async def git_head(_: GitHeadRequest) -> GitHead:
    # Asked once per run, however many images use {git_commit}.
    worktree = (await Get(MaybeGitWorktree, GitWorktreeRequest())).git_worktree
    if worktree is None:
        return GitHead()
    try:
        commit = str(worktree.commit_id)
        uncommitted = worktree.changed_files(include_untracked=True)
    except GitBinaryException as e:
        return GitHead(str(worktree.worktree), git_error=str(e))
    return GitHead(str(worktree.worktree), commit, uncommitted=tuple(sorted(uncommitted)))


UNCOMMITTED_FILES_SHOWN = 5
"""How many of the uncommitted files the error about them names."""


def git_commit_tag_value(head: GitHead, tags: EsbImageTagsField, address: Address) -> str:
    """The value of `{git_commit}` in the tags of the target at `address`: refused unless the
    working tree is exactly the commit, since the tag would name a commit the image was not built
    from."""
    templates = [repr(tag) for tag in tags.value or () if "{git_commit}" in tag]
    where = (
        f"The `{tags.alias}` field of the target {address} has the "
        f"tag{'s' if len(templates) > 1 else ''} {', '.join(templates)}"
    )
    if head.worktree is None:
        raise PublishError(
            f"{where}, but Pants finds no git repository (or no `git`) at the build root.\n\n"
            "Fix: publish from a git checkout, or remove {git_commit} from the tag."
        )
    if head.commit is None:
        raise PublishError(
            f"{where}, but git names no commit checked out at {head.worktree} "
            f"({head.git_error}).\n\nFix: commit, then publish again."
        )
    if head.uncommitted:
        shown = ", ".join(head.uncommitted[:UNCOMMITTED_FILES_SHOWN])
        more = len(head.uncommitted) - UNCOMMITTED_FILES_SHOWN
        files = f"{shown} and {more} more" if more > 0 else shown
        raise PublishError(
            f"{where}, but the working tree at {head.worktree} differs from the commit checked "
            f"out, {head.commit[:12]} ({files}): the image is built from the working tree, so "
            "the tag could name a commit that does not build it.\n\nFix: commit the changes (or "
            "stash them) and publish again, or tag with {digest}, which names the image's "
            "content, instead."
        )
    return head.commit


async def _service_version(field_set: PublishServiceImageFieldSet) -> str:
    path = in_service(field_set.address, SERVICE_PYPROJECT_FILE)
    contents = await Get(
        DigestContents,
        PathGlobs(
            [path],
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=f"{{version}} in the tags of {field_set.address}",
        ),
    )
    return project_version(contents[0].content, path, field_set.address)


async def _tag_values(
    field_set: PublishBaseImageFieldSet | PublishServiceImageFieldSet, image_digest: str
) -> dict[str, str]:
    """The values of the placeholders the target's tags use, and only of those (finding the
    version or the commit may fail)."""
    used = {name for tag in field_set.tags.value or () for name in TAG_PLACEHOLDER.findall(tag)}
    values = {"digest": image_digest.partition(":")[2][:DIGEST_TAG_LENGTH]}
    if "git_commit" in used:
        head = await Get(GitHead, GitHeadRequest())
        values["git_commit"] = git_commit_tag_value(head, field_set.tags, field_set.address)
    if "version" in used:
        if not isinstance(field_set, PublishServiceImageFieldSet):
            raise PublishError(
                f"The `{field_set.tags.alias}` field of the target {field_set.address} uses "
                f"{{version}}, a service's `[project].version`, but an `{EsbBaseImageTarget.alias}` "
                "has no pyproject.toml.\n\nFix: tag the base with {digest} or {git_commit}, or a "
                "literal version."
            )
        values["version"] = await _service_version(field_set)
    return values


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
) -> tuple[str, ...]:
    return (
        commands.PUSH_IMAGE,
        flags.LAYOUT,
        layout,
        flags.REFERENCE,
        destination.name(repository),
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
    request: PublishImageRequest, registries: RegistriesSubsystem, connection: RegistryConnection
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
    tags = fill_in_tags(field_set.tags, field_set.address, await _tag_values(field_set, digest))
    inputs = await Get(Digest, MergeDigests([layout_digest, await connection_inputs(connection)]))
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
                ),
                description=f"Push {repository} to {destination.description}",
                input_digest=inputs,
                needs_network_trust=True,
            ),
        )
        for destination in destinations
    )
    return PublishProcesses(
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
    )


def rules():
    return [
        *collect_rules(),
        *PublishBaseImageFieldSet.rules(),
        *PublishServiceImageFieldSet.rules(),
    ]
