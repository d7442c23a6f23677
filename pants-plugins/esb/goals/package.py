"""`pants package` for image targets: writes each image under `dist/` and prints its digest."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Iterable

from esb.target_types import (
    EsbBaseSourcesField,
    EsbImageOutputPathField,
    EsbImageRepositoryField,
    EsbServiceSourcesField,
)
from esb.util_rules.base import BaseImageRequest, BuiltBaseImage
from esb.util_rules.image import (
    IMAGE_BLOBS,
    IMAGE_INVENTORY,
    IMAGE_LAYOUT,
    IMAGE_METADATA,
    BuiltImage,
)
from esb.util_rules.service import ServiceImageRequest
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, DigestEntries, FileEntry, SymlinkEntry
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

_OUTPUT_SUFFIXES = {
    IMAGE_LAYOUT: ".oci",
    IMAGE_METADATA: ".image.json",
    IMAGE_INVENTORY: ".inventory.json",
}
SHARED_BLOBS = "blobs/sha256"
"""Under `dist/`: every blob of every packaged image, once. Each image's layout links to its
blobs there, so that a run writes each shared layer once rather than once per image."""


@dataclass(frozen=True)
class EsbBaseImageFieldSet(PackageFieldSet):
    required_fields = (EsbBaseSourcesField,)

    output_path: EsbImageOutputPathField
    repository: EsbImageRepositoryField


@dataclass(frozen=True)
class EsbServiceImageFieldSet(PackageFieldSet):
    required_fields = (EsbServiceSourcesField,)

    output_path: EsbImageOutputPathField
    repository: EsbImageRepositoryField


def output_path_for(built_path: str, output_prefix: str) -> str:
    """`image.oci/index.json` → `<output_prefix>.oci/index.json`, and so on."""
    head, _, rest = built_path.partition("/")
    return f"{output_prefix}{_OUTPUT_SUFFIXES[head]}" + (f"/{rest}" if rest else "")


def packaged_entries(
    image_entries: Iterable[FileEntry], output_prefix: str
) -> list[FileEntry | SymlinkEntry]:
    """The image's files under their `dist/` names, each blob in `SHARED_BLOBS` and linked to
    from the image's layout by a relative symbolic link (so that `dist/` can move)."""
    packaged: list[FileEntry | SymlinkEntry] = []
    for entry in image_entries:
        path = output_path_for(entry.path, output_prefix)
        if entry.path.startswith(f"{IMAGE_BLOBS}/"):
            shared = f"{SHARED_BLOBS}/{posixpath.basename(entry.path)}"
            packaged.append(FileEntry(shared, entry.file_digest))
            packaged.append(SymlinkEntry(path, posixpath.relpath(shared, posixpath.dirname(path))))
        else:
            packaged.append(FileEntry(path, entry.file_digest, entry.is_executable))
    return packaged


def packaged_layout(
    entries: Iterable[FileEntry | SymlinkEntry], output_prefix: str
) -> list[FileEntry]:
    """The image's layout as `package` wrote it, its blob links replaced by the blobs."""
    layout = f"{output_prefix}{_OUTPUT_SUFFIXES[IMAGE_LAYOUT]}/"
    entries = list(entries)
    shared = {entry.path: entry for entry in entries if isinstance(entry, FileEntry)}
    files = []
    for entry in entries:
        if not entry.path.startswith(layout):
            continue
        if isinstance(entry, SymlinkEntry):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), entry.target))
            files.append(FileEntry(entry.path, shared[target].file_digest))
        elif isinstance(entry, FileEntry):
            files.append(entry)
    return files


async def _package(image: BuiltImage, output_path: EsbImageOutputPathField) -> BuiltPackage:
    prefix = output_path.value_or_default(file_ending=None)
    entries = await Get(DigestEntries, Digest, image.digest)
    files = [entry for entry in entries if isinstance(entry, FileEntry)]
    packaged = await Get(Digest, CreateDigest(packaged_entries(files, prefix)))
    metadata = image.metadata
    tags = ", ".join(metadata["tags"]) or "no tags"
    layout = f"{prefix}{_OUTPUT_SUFFIXES[IMAGE_LAYOUT]}"
    return BuiltPackage(
        packaged,
        (
            # Named so that `package` clears the layout first: no link to a blob of an earlier
            # build survives in it.
            BuiltPackageArtifact(layout),
            BuiltPackageArtifact(
                f"{prefix}.image.json",
                extra_log_lines=(
                    f"Image {metadata['repository']} ({tags}): {metadata['digest']}",
                    f"OCI layout: {layout} (blobs in {SHARED_BLOBS})  "
                    f"packages: {prefix}.inventory.json",
                ),
            ),
        ),
    )


@rule(desc="Package a base image", level=LogLevel.DEBUG)
async def package_base_image(field_set: EsbBaseImageFieldSet) -> BuiltPackage:
    base = await Get(BuiltBaseImage, BaseImageRequest(field_set.address))
    return await _package(base.image, field_set.output_path)


@rule(desc="Package a service image", level=LogLevel.DEBUG)
async def package_service_image(field_set: EsbServiceImageFieldSet) -> BuiltPackage:
    image = await Get(BuiltImage, ServiceImageRequest(field_set.address))
    return await _package(image, field_set.output_path)


def rules():
    return [
        *collect_rules(),
        UnionRule(PackageFieldSet, EsbBaseImageFieldSet),
        UnionRule(PackageFieldSet, EsbServiceImageFieldSet),
    ]
