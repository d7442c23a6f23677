"""`pants package` for image targets: writes each image under `dist/` and prints its digest."""

from __future__ import annotations

import json
import logging
import posixpath
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pants.base.build_root import BuildRoot
from pants.core.goals.package import (
    BuiltPackage,
    BuiltPackageArtifact,
    PackageFieldSet,
    PackageSubsystem,
)
from pants.core.util_rules.distdir import DistDir
from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    PathGlobs,
    SymlinkEntry,
)
from pants.engine.goal import CurrentExecutingGoals
from pants.engine.rules import Get, MultiGet, _uncacheable_rule, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from esb.dist_blobs import CorruptBlobError, missing_blobs, write_blob
from esb.dist_files import (
    link_if_changed,
    remove_abandoned_partials,
    remove_all_but,
    write_if_changed,
)
from esb.subsystems.registries import RegistriesSubsystem
from esb.target_types import (
    EsbBaseSourcesField,
    EsbImageOutputPathField,
    EsbImageRegistriesField,
    EsbImageRepositoryField,
    EsbImageTagsField,
    EsbServiceSourcesField,
)
from esb.util_rules import image_tags
from esb.util_rules.base import (
    BaseArchitectures,
    BaseArchitecturesRequest,
    BaseImageRequest,
    BuiltBaseImage,
)
from esb.util_rules.collisions import UniqueImage, UniqueImageRequest
from esb.util_rules.image import (
    IMAGE_BLOBS,
    IMAGE_INVENTORY,
    IMAGE_LAYOUT,
    IMAGE_METADATA,
    BuiltImage,
    ImageIndexRequest,
)
from esb.util_rules.image_refs import ImageNaming, RegistryRefs, destinations_of, image_refs
from esb.util_rules.service import ServiceArchitecturesRequest, ServiceImageRequest
from esb_contract import steps

_OUTPUT_SUFFIXES = {
    IMAGE_LAYOUT: ".oci",
    IMAGE_METADATA: ".image.json",
    IMAGE_INVENTORY: ".inventory.json",
}
DOCKER_INFO_SUFFIX = ".docker-info.json"
"""Beside `.image.json`: the image's ID and the names `publish` gives it, in the schema of the
`docker-info.json` of Pants' `docker_image` (`DockerInfoV1`), for the tools that read it."""
SHARED_BLOBS = "blobs/sha256"
"""Under `dist/`: every blob of every packaged image, once, written by `write_shared_blobs`. Each
image's layout has one link, its `blobs` directory, to the shared one."""

logger = logging.getLogger(__name__)


class PackageWriteError(Exception):
    """A file could not be written to `dist/`, or a blob's bytes are not what its digest says."""


@dataclass(frozen=True)
class EsbBaseImageFieldSet(PackageFieldSet):
    required_fields = (EsbBaseSourcesField,)

    output_path: EsbImageOutputPathField
    repository: EsbImageRepositoryField
    tags: EsbImageTagsField
    registries: EsbImageRegistriesField


@dataclass(frozen=True)
class EsbServiceImageFieldSet(PackageFieldSet):
    required_fields = (EsbServiceSourcesField,)

    output_path: EsbImageOutputPathField
    repository: EsbImageRepositoryField
    tags: EsbImageTagsField
    registries: EsbImageRegistriesField


def output_path_for(built_path: str, output_prefix: str) -> str:
    """`image.oci/index.json` → `<output_prefix>.oci/index.json`, and so on."""
    head, _, rest = built_path.partition("/")
    return f"{output_prefix}{_OUTPUT_SUFFIXES[head]}" + (f"/{rest}" if rest else "")


def layout_link(output_prefix: str) -> tuple[str, str]:
    """The image layout's `blobs` (its path under `dist/`, and its target): a relative symbolic
    link to the shared blob directory, so that `dist/` can move."""
    layout_blobs = output_path_for(posixpath.dirname(IMAGE_BLOBS), output_prefix)
    shared_blobs = posixpath.dirname(SHARED_BLOBS)
    return layout_blobs, posixpath.relpath(shared_blobs, posixpath.dirname(layout_blobs))


def packaged_files(image_files: Iterable[FileContent], output_prefix: str) -> list[FileContent]:
    """The image's files but its blobs, under their `dist/` names."""
    return [
        FileContent(output_path_for(file.path, output_prefix), file.content, file.is_executable)
        for file in image_files
        if not file.path.startswith(f"{IMAGE_BLOBS}/")
    ]


def in_writing_order(files: Iterable[FileContent]) -> list[FileContent]:
    """The layout's `index.json` and then the `.image.json` last, so that a reader who finds those
    of this run finds the rest of the image's files of this run too."""

    def rank(file: FileContent) -> tuple[int, str]:
        last = (".oci/index.json", _OUTPUT_SUFFIXES[IMAGE_METADATA])
        return (
            next((i + 1 for i, end in enumerate(last) if file.path.endswith(end)), 0),
            file.path,
        )

    return sorted(files, key=rank)


def blob_entries(image_entries: Iterable[FileEntry]) -> dict[str, FileEntry]:
    """The image's blobs by hex digest."""
    return {
        posixpath.basename(entry.path): entry
        for entry in image_entries
        if entry.path.startswith(f"{IMAGE_BLOBS}/")
    }


@dataclass(frozen=True)
class SharedBlobRequest:
    """One blob for the shared directory: images that share a layer ask for the same blob, and
    the engine runs `write_shared_blob` once per run for all of them."""

    directory: str
    entry: FileEntry


@dataclass(frozen=True)
class SharedBlobWrite:
    """Whether the blob is in place: `corrupt` says why the store's bytes were refused, `error`
    why the file could not be written; neither, and it is."""

    corrupt: str | None = None
    error: str | None = None


@_uncacheable_rule(desc="Write a blob to dist/", level=LogLevel.TRACE)
async def write_shared_blob(request: SharedBlobRequest) -> SharedBlobWrite:
    directory = Path(request.directory)
    name = posixpath.basename(request.entry.path)
    blob = await Get(Digest, CreateDigest([request.entry]))
    contents = await Get(DigestContents, Digest, blob)
    try:
        write_blob(directory, name, contents[0].content)
    except CorruptBlobError as error:
        return SharedBlobWrite(corrupt=str(error))
    except OSError as error:
        return SharedBlobWrite(error=error.strerror or str(error))
    return SharedBlobWrite()


async def write_shared_blobs(
    address: Address, blobs: Mapping[str, FileEntry], directory: Path
) -> None:
    """Write the blobs that `directory` lacks, one at a time (a layer can be large), each checked
    against its digest and renamed into place by `write_shared_blob`, which the images of a run
    share."""
    sizes = {name: entry.file_digest.serialized_bytes_length for name, entry in blobs.items()}
    missing = missing_blobs(directory, sizes)
    # Only before writing: the directory holds every image's blobs, so a scan for every image
    # of every run would cost each run the square of the number of images.
    if missing:
        remove_abandoned_partials(directory)
    for name in missing:
        written = await Get(SharedBlobWrite, SharedBlobRequest(str(directory), blobs[name]))
        if written.corrupt:
            raise PackageWriteError(
                f"Pants' local store returned corrupt bytes for a blob of {address}: "
                f"{written.corrupt}. Nothing was written in its place.\n\nFix: the store (by "
                "default ~/.cache/pants/lmdb_store) is damaged: move it aside and run again, e.g. "
                "`mv ~/.cache/pants/lmdb_store ~/.cache/pants/lmdb_store.damaged`; the build "
                "repopulates it (from the remote cache, if one is set)."
            )
        if written.error:
            raise PackageWriteError(
                f"Could not write {directory / name} ({sizes[name]} bytes), a blob of {address}: "
                f"{written.error}.\n\nFix: make room or permissions for dist/ and run "
                "again. No blob is left partial, and the image's other files in dist/ are from "
                "an earlier run: they are written only after its blobs."
            )


@contextmanager
def failure_reported(field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet, dist: Path):
    """On failure, say what the image has in `dist/`: its files are written only once it is built
    and its blobs are in place, so what is there is from an earlier run, or nothing."""
    built = False
    try:
        yield
        built = True
    finally:
        prefix = field_set.output_path.value_or_default(file_ending=None)
        metadata = dist / f"{prefix}.image.json"
        if not built and metadata.exists():
            logger.warning(
                f"{field_set.address} failed: nothing of this run was written to dist/ but "
                f"complete blobs. {metadata} and the other outputs there are from an earlier run."
            )


async def built_image(field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet) -> BuiltImage:
    """The image as built: a complete layout with its blobs, not as written to `dist/`. On a
    base of several platforms, an image index over the image built for each."""
    address = field_set.address
    service = isinstance(field_set, EsbServiceImageFieldSet)
    architectures = (
        await Get(BaseArchitectures, ServiceArchitecturesRequest(address))
        if service
        else await Get(BaseArchitectures, BaseArchitecturesRequest(address))
    ).architectures
    # One platform: built as every other rule asks for it (the base's first platform).
    requested = ("",) if len(architectures) == 1 else architectures
    if service:
        images = await MultiGet(
            Get(BuiltImage, ServiceImageRequest(address, architecture))
            for architecture in requested
        )
    else:
        bases = await MultiGet(
            Get(BuiltBaseImage, BaseImageRequest(address, architecture))
            for architecture in requested
        )
        images = tuple(base.image for base in bases)
    if len(images) == 1:
        return images[0]
    description = steps.describe(steps.ASSEMBLE, f"the image index of {address}")
    return await Get(BuiltImage, ImageIndexRequest(description, tuple(images)))


def image_id(metadata: Mapping[str, Any]) -> str:
    """What `docker images` shows as the image's ID: its config's digest; for an image of several
    platforms, which has no one config, the digest of its index."""
    return metadata["digest"] if metadata.get("platforms") else metadata["config_digest"]


def docker_info(image: str, refs: Iterable[RegistryRefs]) -> bytes:
    """The `docker-info.json` of an image whose ID is `image`, named by `refs`: per registry, its
    tags under the registry's address, then under its alias when the registry's entry sets
    `use_local_alias`. Ordered as Pants orders it, so the same inputs give the same bytes."""

    def registry(ref: RegistryRefs) -> dict[str, Any]:
        names = [(ref.name, False), *([(ref.local_alias, True)] if ref.local_alias else [])]
        return {
            "alias": ref.destination.alias if ref.destination else None,
            "address": ref.destination.address if ref.destination else None,
            "repository": ref.repository,
            "tags": [
                {
                    "template": template,
                    "tag": tag,
                    "uses_local_alias": uses_local_alias,
                    "name": f"{name}:{tag}",
                }
                for name, uses_local_alias in names
                for tag, template in sorted(ref.tags.items())
            ],
        }

    ordered = sorted(refs, key=lambda ref: ref.destination.address if ref.destination else "")
    info = {"version": 1, "image_id": image, "registries": [registry(ref) for ref in ordered]}
    return json.dumps(info).encode()


def image_naming(field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet) -> ImageNaming:
    return ImageNaming(
        field_set.address,
        field_set.repository,
        field_set.tags,
        field_set.registries,
        service=isinstance(field_set, EsbServiceImageFieldSet),
    )


async def _docker_info(
    field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet,
    metadata: Mapping[str, Any],
    registries: RegistriesSubsystem,
) -> FileContent:
    """The image's `docker-info.json`, with the tags whose placeholders are known now."""
    naming = image_naming(field_set)
    refs = await image_refs(
        naming,
        destinations_of(naming, registries, strict=False),
        registries,
        metadata["digest"],
        strict=False,
    )
    prefix = field_set.output_path.value_or_default(file_ending=None)
    return FileContent(f"{prefix}{DOCKER_INFO_SUFFIX}", docker_info(image_id(metadata), refs))


@dataclass(frozen=True)
class ImageOutputsRequest:
    field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet


@dataclass(frozen=True)
class ImageOutputs:
    """An image as `package` writes it under `dist/`: its files (`packaged_files`), its layout's
    link to the shared blobs, the blobs by hex digest, and what the run prints. Memoized, unlike
    the package rules: a run that changes nothing of an image only checks `dist/` for it."""

    files: tuple[FileContent, ...]
    link: tuple[str, str]
    """The layout's `blobs`: its path and its target."""
    blobs: FrozenDict[str, FileEntry]
    artifacts: tuple[BuiltPackageArtifact, ...]


@rule(desc="Lay out an image for dist/", level=LogLevel.DEBUG)
async def image_outputs(
    request: ImageOutputsRequest, registries: RegistriesSubsystem
) -> ImageOutputs:
    field_set = request.field_set
    image = await built_image(field_set)
    # After the build, whose context check names a bad link in the service's directory before
    # anything reads it: this check reads every BUILD file, and Pants fails bare on such links.
    await Get(UniqueImage, UniqueImageRequest(field_set.address))
    entries = await Get(DigestEntries, Digest, image.digest)
    files = [entry for entry in entries if isinstance(entry, FileEntry)]
    blobs = blob_entries(files)
    small = await Get(Digest, DigestSubset(image.digest, PathGlobs(["**", f"!{IMAGE_BLOBS}/**"])))
    contents = await Get(DigestContents, Digest, small)
    metadata = image.metadata
    prefix = field_set.output_path.value_or_default(file_ending=None)
    info = await _docker_info(field_set, metadata, registries)
    tags = ", ".join(metadata["tags"]) or "no tags"
    layout = f"{prefix}{_OUTPUT_SUFFIXES[IMAGE_LAYOUT]}"
    return ImageOutputs(
        tuple(in_writing_order([*packaged_files(contents, prefix), info])),
        layout_link(prefix),
        FrozenDict(blobs),
        (
            BuiltPackageArtifact(layout),
            BuiltPackageArtifact(
                f"{prefix}.image.json",
                extra_log_lines=(
                    f"Image {metadata['repository']} ({tags}): {metadata['digest']}",
                    *(
                        f"  {entry['platform']}: {entry['digest']} (config {entry['config_digest']})"
                        for entry in metadata.get("platforms", ())
                    ),
                    f"OCI layout: {layout} (blobs in {SHARED_BLOBS})  "
                    f"packages: {prefix}.inventory.json",
                ),
            ),
        ),
    )


def write_image_files(address: Address, outputs: ImageOutputs, dist: Path) -> None:
    """Put the image's files and its layout's link in `dist/`, writing only what differs, each by
    rename; then remove from its layout what this run did not write (e.g. a `blobs` directory
    of an older layout)."""
    layout_blobs, target = outputs.link
    layout = dist / posixpath.dirname(layout_blobs)
    path = layout
    try:
        for file in outputs.files:
            path = dist / file.path
            if write_if_changed(path, file.content, executable=file.is_executable):
                remove_abandoned_partials(path.parent, of=path.name)
        path = dist / layout_blobs
        link_if_changed(path, target)
        path = layout
        written = {posixpath.basename(file.path) for file in outputs.files}
        remove_all_but(layout, {*written, posixpath.basename(layout_blobs)})
    except OSError as error:
        reason = error.strerror or str(error)
        if isinstance(error, (FileExistsError, NotADirectoryError)) and error.filename:
            reason = f"{error.filename} is not a directory"
        raise PackageWriteError(
            f"Could not write {path}, an output of {address}: {reason}.\n\n"
            "Fix: make room or permissions for dist/, or move away what is in the way, and run "
            "again. Every file there is whole, this run's or an earlier one's: each is written "
            "beside its place and renamed into it."
        ) from None


async def _package(
    field_set: EsbBaseImageFieldSet | EsbServiceImageFieldSet,
    dist_dir: DistDir,
    build_root: BuildRoot,
    goals: CurrentExecutingGoals,
) -> BuiltPackage:
    dist = Path(build_root.path, dist_dir.relpath)
    with failure_reported(field_set, dist):
        outputs = await Get(ImageOutputs, ImageOutputsRequest(field_set))
        if not goals.is_running(PackageSubsystem.name):
            # Other goals, e.g. `publish`, package the image through this rule too; only
            # `package` writes `dist/`, so that a failed push leaves it as it was.
            files = await Get(Digest, CreateDigest([*outputs.files, SymlinkEntry(*outputs.link)]))
            return BuiltPackage(files, outputs.artifacts)
        await write_shared_blobs(field_set.address, outputs.blobs, dist / SHARED_BLOBS)
        write_image_files(field_set.address, outputs, dist)
    # Written above, not by Pants, which would rewrite every file of every image on every run.
    return BuiltPackage(
        EMPTY_DIGEST,
        tuple(
            BuiltPackageArtifact(
                None,
                (
                    *([f"Wrote {dist_dir.relpath / artifact.relpath}"] if artifact.relpath else []),
                    *artifact.extra_log_lines,
                ),
            )
            for artifact in outputs.artifacts
        ),
    )


# Uncacheable: these rules write to `dist/`, which Pants does not watch, so they run in every
# session to put back what was deleted or changed there. What they await, `ImageOutputs` included,
# stays memoized.
@_uncacheable_rule(desc="Package a base image", level=LogLevel.DEBUG)
async def package_base_image(
    field_set: EsbBaseImageFieldSet,
    dist_dir: DistDir,
    build_root: BuildRoot,
    goals: CurrentExecutingGoals,
) -> BuiltPackage:
    return await _package(field_set, dist_dir, build_root, goals)


@_uncacheable_rule(desc="Package a service image", level=LogLevel.DEBUG)
async def package_service_image(
    field_set: EsbServiceImageFieldSet,
    dist_dir: DistDir,
    build_root: BuildRoot,
    goals: CurrentExecutingGoals,
) -> BuiltPackage:
    return await _package(field_set, dist_dir, build_root, goals)


def rules():
    return [
        *collect_rules(),
        *image_tags.rules(),
        UnionRule(PackageFieldSet, EsbBaseImageFieldSet),
        UnionRule(PackageFieldSet, EsbServiceImageFieldSet),
    ]
