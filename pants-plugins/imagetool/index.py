"""A multi-platform image: an OCI image index over the images of one target built for each of its
platforms, each under its own manifest with the platform set, as registries and engines pick
them. The index's digest is the image's identity; it is reproducible as the images are.

The layout written holds the index, and each platform's manifest and config; the layers stay in
the platforms' layouts, whose blobs the caller merges in by digest (as for `assemble`).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from esb_contract import commands, flags
from esb_contract.image_spec import Platform
from esb_contract.media_types import INDEX_MEDIA_TYPE
from imagetool.commands import AddArguments, CommandError, Run, read_json, write_json
from imagetool.oci import REF_NAME_ANNOTATION, Descriptor, OciLayout, build_index
from imagetool.spec import ImageMetadata


def index_images(
    layouts: Sequence[Path], metadata: Sequence[ImageMetadata], out_layout: Path
) -> dict[str, Any]:
    """Write the index of the images in `layouts` (each with its `metadata`, one per platform)
    to `out_layout`; return the index's metadata: its digest, the repository and tags, and
    each platform's manifest, config and layers."""
    if not layouts or len(layouts) != len(metadata):
        raise CommandError(f"Give each platform's layout with its metadata ({flags.LAYOUT}).")
    names = {(m.repository, tuple(m.tags)) for m in metadata}
    if len(names) != 1:
        raise CommandError(
            f"The images to index are of different names: {sorted(names)}; an index holds one "
            "image's platforms."
        )
    out = OciLayout.create(out_layout)
    manifests = []
    platforms: list[Platform] = []
    for layout, image_metadata in zip(layouts, metadata):
        image = OciLayout(layout).load_image()
        if image.manifest.digest != image_metadata.digest:
            raise CommandError(
                f"{layout} holds the image {image.manifest.digest}, and its metadata names "
                f"{image_metadata.digest}."
            )
        platform = image.platform
        if any(platform.matches(other) for other in platforms):
            raise CommandError(f"Two of the images to index are for {platform}.")
        platforms.append(platform)
        config = Descriptor.from_json(
            image.layout.read_json_blob(image.manifest)["config"], where=str(layout)
        )
        for descriptor in (image.manifest, config):
            shutil.copyfile(
                image.layout.blob_path(descriptor.digest), out.blob_path(descriptor.digest)
            )
        manifests.append(
            Descriptor(
                image.manifest.media_type,
                image.manifest.digest,
                image.manifest.size,
                platform=platform,
            )
        )
    # In a fixed order, whatever order the platforms were given in.
    order = sorted(range(len(manifests)), key=lambda i: str(platforms[i]))
    index = out.add_json_blob(INDEX_MEDIA_TYPE, build_index([manifests[i] for i in order]))
    repository, tags = names.pop()
    annotations = {REF_NAME_ANNOTATION: tags[0]} if tags else {}
    out.write_index(
        [Descriptor(index.media_type, index.digest, index.size, annotations=annotations)]
    )
    layers: dict[str, int] = {}
    for image_metadata in metadata:
        layers.update((layer.digest, layer.size) for layer in image_metadata.layers)
    return {
        "digest": index.digest,
        "media_type": INDEX_MEDIA_TYPE,
        "repository": repository,
        "tags": list(tags),
        "platforms": [{"platform": str(platforms[i]), **metadata[i].to_json()} for i in order],
        "layers": [{"digest": digest, "size": size} for digest, size in sorted(layers.items())],
    }


def _add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write an OCI image index over one image's builds for several platforms, into an OCI "
        "layout (the index, and each platform's manifest and config; the layer blobs stay with "
        "the platforms' layouts) and a metadata file listing each platform's manifest."
    )
    parser.add_argument(
        flags.LAYOUT,
        type=Path,
        action="append",
        required=True,
        help="a platform's OCI layout, as `assemble` wrote it (repeatable)",
    )
    parser.add_argument(
        flags.METADATA,
        type=Path,
        action="append",
        required=True,
        help="that platform's metadata (.image.json), in the same order (repeatable)",
    )
    parser.add_argument(
        flags.INVENTORY,
        type=Path,
        action="append",
        required=True,
        help="that platform's package inventory, in the same order (repeatable)",
    )
    parser.add_argument(
        flags.OUT_LAYOUT, type=Path, required=True, help="the OCI layout directory to write"
    )
    parser.add_argument(
        flags.OUT_METADATA, type=Path, required=True, help="the index's metadata to write"
    )
    parser.add_argument(
        flags.OUT_INVENTORY,
        type=Path,
        required=True,
        help="every platform's inventory, by platform, to write",
    )


def _index(args: argparse.Namespace) -> int:
    if not len(args.layout) == len(args.metadata) == len(args.inventory):
        raise CommandError(
            f"Give each platform's {flags.LAYOUT}, {flags.METADATA} and {flags.INVENTORY}."
        )
    metadata = [ImageMetadata.from_json(read_json(path), where=str(path)) for path in args.metadata]
    written = index_images(args.layout, metadata, args.out_layout)
    write_json(args.out_metadata, written)
    platform_of = {entry["digest"]: entry["platform"] for entry in written["platforms"]}
    by_platform = {
        platform_of[image.digest]: read_json(path) for image, path in zip(metadata, args.inventory)
    }
    write_json(args.out_inventory, {"platforms": by_platform})
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.IMAGE_INDEX: (_add_index_arguments, _index),
}
