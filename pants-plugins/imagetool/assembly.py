"""The `assemble` command: an image's OCI layout written from its spec, its base's layout and the
descriptors of its own layers.

The image config stacks the spec's changes on the base's config; the manifest lists the base's
layers, then the image's own; `index.json` and the `manifest.json` of `docker load` name it by
its tags. The layer blobs are not copied: the build system links them into the layout by digest.
An image is refused when it would stack more layers than overlay filesystems can, when its
platform contradicts its base's, or when its user names an account or group its layers lack.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esb_contract import commands, flags
from esb_contract.image_spec import ImageSpec, SpecError
from esb_contract.limits import MAX_LAYERS
from esb_contract.media_types import CONFIG_MEDIA_TYPE
from imagetool.accounts import check_user, needs_accounts
from imagetool.commands import (
    AddArguments,
    CommandError,
    Run,
    read_json,
    read_layer_descriptor,
    source_date_epoch,
    write_json,
)
from imagetool.inventory import LayerInventory, merged_accounts
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


def assemble(spec: ImageSpec, *, created: int, layout_dir: Path) -> ImageMetadata:
    """Write the image `spec` describes as an OCI layout directory, blobs of its layers aside.

    The layout gets the config, the manifest, `index.json` and the `manifest.json` that
    `docker load` reads; each layer blob, the base's included, belongs at `blobs/sha256/<hex>` of
    its descriptor and is the caller's to place there. Layers are the bulk of an image and are
    already stored where they were built, so the build system links them in by digest (Pants:
    by reference, copying no byte) instead of this command reading and writing them once more.
    An image whose user names an account or group that it lacks is refused (`UserError`).
    """
    references = [image_reference(spec.repository, tag) for tag in spec.tags]
    base = _load_base(spec)
    platform = _image_platform(spec, base)
    new_layers = [(read_layer_descriptor(Path(layer.descriptor)), layer) for layer in spec.layers]
    base_layers = len(base.layers) if base is not None else 0
    if base_layers + len(new_layers) > MAX_LAYERS:
        raise SpecError(
            f"The image {spec.repository} would have {base_layers + len(new_layers)} layers "
            f"({base_layers} of its base, {len(new_layers)} of its own); overlay filesystems "
            f"stack at most {MAX_LAYERS}, so engines could not run it.\n\nFix: build on a base "
            "with fewer layers (e.g. flatten an upstream image), or depend on fewer "
            "distributions."
        )

    layers = []
    if base is not None:
        assert spec.base is not None, "a base image is loaded only from the spec's base"
        layers += [
            oci_layer_descriptor(layer, where=f"base {spec.base.layout}") for layer in base.layers
        ]
    for blob, layer in new_layers:
        descriptor = Descriptor(blob.media_type, blob.digest, blob.size)
        layers.append(oci_layer_descriptor(descriptor, where=layer.descriptor))
    image_config = build_image_config(
        platform=platform,
        diff_ids=[blob.diff_id for blob, _ in new_layers],
        created_by=[layer.created_by for _, layer in new_layers],
        changes=spec.config,
        created=created,
        base_config=base.config if base is not None else None,
    )
    _check_user(spec, image_config["config"].get("User") or "", len(layers))

    layout = OciLayout.create(layout_dir)
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


def _check_user(spec: ImageSpec, user: str, layer_count: int) -> None:
    """That the account and group `user` names are in the image (see `imagetool.accounts`)."""
    if not needs_accounts(user):
        return
    if spec.layer_inventories is None or len(spec.layer_inventories) != layer_count:
        listed = "none" if spec.layer_inventories is None else len(spec.layer_inventories)
        raise SpecError(
            f"The image {spec.repository} runs as {user!r}, which names an account: its spec "
            f"needs `layer_inventories` for all its {layer_count} layers to check that the "
            f"image defines it, and lists {listed}."
        )
    layers = [LayerInventory.from_json(read_json(Path(path))) for path in spec.layer_inventories]
    check_user(user, merged_accounts(layers), inherited=spec.config.user is None)


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
        "Assemble an image from a base OCI layout and layer descriptors, as described by an image "
        "spec (see imagetool.spec), into an OCI layout (without the layer blobs, which the caller "
        "links in by digest) and a metadata file. Fails when the image's user names an account "
        "or group that its layers' account files do not define."
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


def _assemble(args: argparse.Namespace) -> int:
    spec = ImageSpec.from_json(read_json(args.spec), where=str(args.spec))
    metadata = assemble(
        spec,
        created=source_date_epoch(spec.created),
        layout_dir=args.out_layout,
    )
    write_json(args.out_metadata, metadata.to_json())
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.ASSEMBLE: (_add_assemble_arguments, _assemble),
}
