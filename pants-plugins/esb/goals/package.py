"""`pants package` for image targets: writes each image under `dist/` and prints its digest."""

from __future__ import annotations

from dataclasses import dataclass

from esb.target_types import (
    EsbBaseSourcesField,
    EsbImageOutputPathField,
    EsbImageRepositoryField,
    EsbServiceSourcesField,
)
from esb.util_rules.base import BaseImageRequest, BuiltBaseImage
from esb.util_rules.image import (
    IMAGE_ARCHIVE,
    IMAGE_INVENTORY,
    IMAGE_LAYOUT,
    IMAGE_METADATA,
    BuiltImage,
)
from esb.util_rules.service import ServiceImageRequest
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact, PackageFieldSet
from pants.engine.fs import CreateDigest, Digest, DigestEntries, FileEntry
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

_OUTPUT_SUFFIXES = {
    IMAGE_LAYOUT: ".oci",
    IMAGE_ARCHIVE: ".docker.tar",
    IMAGE_METADATA: ".image.json",
    IMAGE_INVENTORY: ".inventory.json",
}


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
    """`image.oci/blobs/...` → `<output_prefix>.oci/blobs/...`, and so on."""
    head, _, rest = built_path.partition("/")
    return f"{output_prefix}{_OUTPUT_SUFFIXES[head]}" + (f"/{rest}" if rest else "")


async def _package(image: BuiltImage, output_path: EsbImageOutputPathField) -> BuiltPackage:
    prefix = output_path.value_or_default(file_ending=None)
    entries = await Get(DigestEntries, Digest, image.digest)
    renamed = await Get(
        Digest,
        CreateDigest(
            FileEntry(output_path_for(e.path, prefix), e.file_digest, e.is_executable)
            for e in entries
            if isinstance(e, FileEntry)
        ),
    )
    metadata = image.metadata
    tags = ", ".join(metadata["tags"]) or "no tags"
    return BuiltPackage(
        renamed,
        (
            BuiltPackageArtifact(
                f"{prefix}.image.json",
                extra_log_lines=(
                    f"Image {metadata['repository']} ({tags}): {metadata['digest']}",
                    f"OCI layout: {prefix}.oci  docker archive: {prefix}.docker.tar  "
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
