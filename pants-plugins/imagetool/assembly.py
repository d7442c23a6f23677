"""The `assemble` command: an image's OCI layout written from its spec, its base's layout and the
descriptors of its own layers.

The image config stacks the spec's changes on the base's config; the manifest lists the base's
layers, then the image's own, then its app layer (`imagetool.app_layer`), which the assembly
writes itself; `index.json` and the `manifest.json` of `docker load` name it by its tags. The
other layer blobs are not copied: the build system links them into the layout by digest. The
image's inventory is the merge of its layers' records. An image is refused when it would stack
more layers than overlay filesystems can, when its platform contradicts its base's, or when its
user names an account or group its layers lack.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from esb_contract import commands, flags
from esb_contract.image_spec import ImageSpec, LayerInput, SpecError
from esb_contract.limits import MAX_LAYERS
from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.accounts import check_user, needs_accounts
from imagetool.app_layer import WrittenAppLayer, write_app_layer
from imagetool.commands import (
    AddArguments,
    CommandError,
    Run,
    read_json,
    read_layer_descriptor,
    source_date_epoch,
    write_json,
)
from imagetool.inventory import InventoryEntry, LayerInventory, merged_accounts, merged_inventory
from imagetool.oci import (
    BASE_DIGEST_ANNOTATION,
    CONTAINERD_NAME_ANNOTATION,
    MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
    Descriptor,
    LoadedImage,
    OciLayout,
    Platform,
    build_image_config,
    build_manifest,
    fully_qualified,
    image_reference,
    oci_layer_descriptor,
    write_docker_manifest,
)
from imagetool.spec import ImageMetadata, LayerSummary
from imagetool.tarlayer import LayerBlob


@dataclass(frozen=True)
class AssembledImage:
    metadata: ImageMetadata
    inventory: list[InventoryEntry] | None
    """The image's packages, when the spec lists its layers' records."""
    app_inventory: LayerInventory | None
    """The app layer's records, when the spec has one."""
    notes: tuple[str, ...] = ()
    """What the build says of the app's files it ships without bytecode."""


def assemble(
    spec: ImageSpec, *, created: int, layout_dir: Path, layer_mtime: int = 0
) -> AssembledImage:
    """Write the image `spec` describes as an OCI layout directory, blobs of its layers aside.

    The layout gets the config, the manifest, `index.json`, the `manifest.json` that
    `docker load` reads, and the blob of the app layer, whose entries are dated `layer_mtime`
    as every layer command dates its own. Every other layer blob, the base's included, belongs
    at `blobs/sha256/<hex>` of its descriptor and is the caller's to place there: layers are the
    bulk of an image and are already stored where they were built, so the build system links
    them in by digest (Pants: by reference, copying no byte) instead of this command reading and
    writing them once more. An image whose user names an account or group that it lacks is
    refused (`UserError`), and nothing is written.
    """
    references = [image_reference(spec.repository, tag) for tag in spec.tags]
    base = _load_base(spec)
    platform = _image_platform(spec, base)
    new_layers = [(read_layer_descriptor(Path(layer.descriptor)), layer) for layer in spec.layers]
    base_layers = len(base.layers) if base is not None else 0
    own_layers = len(new_layers) + (1 if spec.app is not None else 0)
    if base_layers + own_layers > MAX_LAYERS:
        raise SpecError(
            f"The image {spec.repository} would have {base_layers + own_layers} layers "
            f"({base_layers} of its base, {own_layers} of its own); overlay filesystems "
            f"stack at most {MAX_LAYERS}, so engines could not run it.\n\nFix: build on a base "
            "with fewer layers (e.g. flatten an upstream image), or depend on fewer "
            "distributions."
        )
    inventories = _read_inventories(spec)
    with tempfile.TemporaryDirectory(prefix="esb-assemble-") as scratch:
        app = (
            write_app_layer(spec.app, Path(scratch), mtime=layer_mtime)
            if spec.app is not None
            else None
        )
        if app is not None and inventories is not None:
            inventories.append(app.inventory)
        metadata = _write_layout(
            spec, base, platform, new_layers, app, inventories, references, created, layout_dir
        )
    return AssembledImage(
        metadata,
        merged_inventory(inventories) if inventories is not None else None,
        app.inventory if app is not None else None,
        app.notes if app is not None else (),
    )


def _write_layout(
    spec: ImageSpec,
    base: LoadedImage | None,
    platform: Platform,
    new_layers: list[tuple[LayerBlob, LayerInput]],
    app: WrittenAppLayer | None,
    inventories: list[LayerInventory] | None,
    references: list[str],
    created: int,
    layout_dir: Path,
) -> ImageMetadata:
    layers = []
    if base is not None:
        assert spec.base is not None, "a base image is loaded only from the spec's base"
        layers += [
            oci_layer_descriptor(layer, where=f"base {spec.base.layout}") for layer in base.layers
        ]
    own = [(blob, layer.created_by, layer.descriptor) for blob, layer in new_layers]
    if app is not None:
        assert spec.app is not None, "an app layer is written only from the spec's app"
        own.append((app.blob, spec.app.created_by, f"the app layer of {spec.app.directory}"))
    for blob, _, where in own:
        descriptor = Descriptor(blob.media_type, blob.digest, blob.size)
        layers.append(oci_layer_descriptor(descriptor, where=where))
    image_config = build_image_config(
        platform=platform,
        diff_ids=[blob.diff_id for blob, _, _ in own],
        created_by=[created_by for _, created_by, _ in own],
        changes=spec.config,
        created=created,
        base_config=base.config if base is not None else None,
    )
    _check_user(spec, image_config["config"].get("User") or "", len(layers), inventories)

    layout = OciLayout.create(layout_dir)
    if app is not None:
        shutil.move(app.path, layout.blob_path(app.blob.digest))
    config = layout.add_json_blob(CONFIG_MEDIA_TYPE, image_config)
    manifest = layout.add_json_blob(
        MANIFEST_MEDIA_TYPE,
        build_manifest(
            config,
            layers,
            {BASE_DIGEST_ANNOTATION: base.manifest.digest} if base is not None else {},
        ),
    )
    names = (
        {
            REF_NAME_ANNOTATION: spec.tags[0],
            CONTAINERD_NAME_ANNOTATION: fully_qualified(references[0]),
        }
        if references
        else {}
    )
    layout.write_index(
        [Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations=names)]
    )
    write_docker_manifest(layout, manifest, references)
    return ImageMetadata(
        digest=manifest.digest,
        config_digest=config.digest,
        repository=spec.repository,
        tags=list(spec.tags),
        layers=[LayerSummary(layer.digest, layer.size) for layer in layers],
        base_digest=base.manifest.digest if base is not None else None,
    )


def _read_inventories(spec: ImageSpec) -> list[LayerInventory] | None:
    if spec.layer_inventories is None:
        return None
    return [LayerInventory.from_json(read_json(Path(path))) for path in spec.layer_inventories]


def _check_user(
    spec: ImageSpec, user: str, layer_count: int, inventories: list[LayerInventory] | None
) -> None:
    """That the account and group `user` names are in the image (see `imagetool.accounts`)."""
    if not needs_accounts(user):
        return
    if inventories is None or len(inventories) != layer_count:
        listed = "none" if spec.layer_inventories is None else len(spec.layer_inventories)
        described = layer_count - (1 if spec.app is not None else 0)
        below_app = " below its app layer" if spec.app is not None else ""
        raise SpecError(
            f"The image {spec.repository} runs as {user!r}, which names an account: its spec "
            f"needs `layer_inventories` for all its {described} layers{below_app} to check that "
            f"the image defines it, and lists {listed}."
        )
    check_user(user, merged_accounts(inventories), inherited=spec.config.user is None)


def _load_base(spec: ImageSpec) -> LoadedImage | None:
    if spec.base is None:
        return None
    return OciLayout(Path(spec.base.layout)).load_image(ref=spec.base.ref, platform=spec.platform)


def _image_platform(spec: ImageSpec, base: LoadedImage | None) -> Platform:
    if base is None:
        if spec.platform is None:
            raise CommandError(
                "An image spec without a base needs a `platform`, "
                'e.g. {"os": "linux", "architecture": "amd64"}.'
            )
        return spec.platform
    assert spec.base is not None, "a base image is loaded only from the spec's base"
    if spec.platform is not None and not spec.platform.matches(base.platform):
        raise CommandError(
            f"The spec's platform {spec.platform.to_json()} does not match the base image's "
            f"{base.platform.to_json()} ({spec.base.layout})."
        )
    return base.platform


def _add_assemble_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Assemble an image from a base OCI layout, layer descriptors and the files of its app "
        "layer, as described by an image spec (see imagetool.spec), into an OCI layout (without "
        "the blobs of the described layers, which the caller links in by digest), a metadata "
        "file and the image's inventory. Fails when the image's user names an account or group "
        "that its layers' account files do not define."
    )
    parser.add_argument(flags.SPEC, type=Path, required=True, help="the image spec (JSON)")
    parser.add_argument(
        flags.OUT_LAYOUT, type=Path, required=True, help="the OCI image layout directory to write"
    )
    parser.add_argument(
        flags.OUT_METADATA,
        type=Path,
        required=True,
        help="the image metadata (.image.json) to write",
    )
    parser.add_argument(
        flags.OUT_INVENTORY,
        type=Path,
        help="the image's packages (JSON) to write, merged from its layers' records; needs the "
        "spec's `layer_inventories`",
    )
    parser.add_argument(
        flags.OUT_APP_INVENTORY,
        type=Path,
        help="the app layer's records (JSON) to write; needs the spec's `app`",
    )


def _assemble(args: argparse.Namespace) -> int:
    spec = ImageSpec.from_json(read_json(args.spec), where=str(args.spec))
    if args.out_inventory and spec.layer_inventories is None:
        raise CommandError(f"{flags.OUT_INVENTORY} needs the spec's `layer_inventories`.")
    if args.out_app_inventory and spec.app is None:
        raise CommandError(f"{flags.OUT_APP_INVENTORY} needs the spec's `app`.")
    image = assemble(
        spec,
        created=source_date_epoch(spec.created),
        layout_dir=args.out_layout,
        layer_mtime=source_date_epoch(None),
    )
    write_json(args.out_metadata, image.metadata.to_json())
    if args.out_inventory and image.inventory is not None:
        write_json(args.out_inventory, [dataclasses.asdict(entry) for entry in image.inventory])
    if args.out_app_inventory and image.app_inventory is not None:
        write_json(args.out_app_inventory, image.app_inventory.to_json())
    for note in image.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.ASSEMBLE: (_add_assemble_arguments, _assemble),
}
