"""The image tool's core commands, `layer-from-dir` and `assemble`, and what all commands share.

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`;
a run raises `ToolError` for an input the user must fix, which `imagetool.cli` reports.
Every input is a file or an argument and every output a file, so a run is a cacheable process.
Time comes from `--mtime` or the spec's `created`, else `SOURCE_DATE_EPOCH`, else 0
(`source_date_epoch`): the library itself never reads the clock or the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from esb_contract.image_spec import ImageSpec, SpecError
from esb_contract.limits import MAX_LAYERS
from imagetool.accounts import check_user, needs_accounts
from imagetool.errors import ToolError
from imagetool.oci import (
    BASE_DIGEST_ANNOTATION,
    CONFIG_MEDIA_TYPE,
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
from imagetool.inventory import (
    LayerInventory,
    layer_inventory,
    merged_accounts,
    merged_inventory,
)
from imagetool.spec import ImageMetadata, LayerSummary, layer_descriptor_fields
from imagetool.tarlayer import (
    LayerBlob,
    LayerMember,
    members_from_directory,
    read_layer_members,
    write_layer,
)

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class CommandError(ToolError, ValueError):
    """An input file is missing or is not what the command needs."""


def source_date_epoch(explicit: int | None) -> int:
    """`explicit` if given, else `$SOURCE_DATE_EPOCH`, else 0: the time every output records."""
    if explicit is not None:
        return explicit
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise CommandError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since the epoch.")
    return int(value)


def add_layer_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of every command that writes a layer: see `LayerOutputs`."""
    parser.add_argument("--out-blob", type=Path, required=True, help="the layer blob (.tar.gz) to write")
    parser.add_argument(
        "--out-descriptor", type=Path, required=True, help="the layer descriptor (JSON) to write"
    )
    parser.add_argument(
        "--out-inventory",
        type=Path,
        help="the layer's package records (JSON) to write, for `merge-inventory`",
    )
    parser.add_argument(
        "--mtime",
        type=int,
        default=None,
        help="timestamp of every entry, in seconds since the epoch (default: $SOURCE_DATE_EPOCH, else 0)",
    )


@dataclass(frozen=True)
class LayerOutputs:
    """Where a command writes its layer blob, descriptor and package records, and the mtime of
    every entry. The records are taken from the members as they are written, so that no step
    ever reads a layer again to list an image's packages."""

    blob: Path
    descriptor: Path
    inventory: Path | None
    mtime: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LayerOutputs:
        """The outputs `add_layer_output_arguments` parsed.

        A command calls this before its work, so that a bad `SOURCE_DATE_EPOCH` fails it at once.
        """
        return cls(
            args.out_blob, args.out_descriptor, args.out_inventory, source_date_epoch(args.mtime)
        )

    def write(self, members: Iterable[LayerMember]) -> LayerBlob:
        members = list(members)
        blob = write_layer(members, self.blob, mtime=self.mtime)
        write_layer_descriptor(blob, self.descriptor)
        if self.inventory:
            write_json(self.inventory, layer_inventory(members).to_json())
        return blob


def write_layer_descriptor(blob: LayerBlob, path: Path) -> None:
    """Write the layer descriptor JSON file that `assemble` reads (see `imagetool.spec`)."""
    write_json(path, dataclasses.asdict(blob))


def read_layer_descriptor(path: Path) -> LayerBlob:
    return LayerBlob(**layer_descriptor_fields(read_json(path), where=str(path)))


def read_input(path: Path) -> bytes:
    """The contents of an input file, or a `CommandError` naming it."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise CommandError(f"Cannot read {path}: {e.strerror}.") from e


def read_json(path: Path) -> Any:
    data = read_input(path)
    try:
        return json.loads(data)
    except ValueError as e:
        raise CommandError(f"{path} is not valid JSON: {e}.") from e


def write_json(path: Path, value: Any) -> None:
    """Write `value` as the tool writes every JSON output: indented, keys sorted."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


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
        layers += [oci_layer_descriptor(layer, where=f"base {spec.base.layout}") for layer in base.layers]
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
            config, layers, {BASE_DIGEST_ANNOTATION: base.manifest.digest} if base is not None else {}
        ),
    )
    names = (
        {REF_NAME_ANNOTATION: spec.tags[0], CONTAINERD_NAME_ANNOTATION: fully_qualified(references[0])}
        if references
        else {}
    )
    layout.write_index([Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations=names)])
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
    if spec.platform is not None and not spec.platform.matches(base.platform):
        raise CommandError(
            f"The spec's platform {spec.platform.to_json()} does not match the base image's "
            f"{base.platform.to_json()} ({spec.base.layout})."
        )
    return base.platform


def _add_layer_from_dir_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write the files of a directory as a reproducible layer, owned by --uid:--gid."
    parser.add_argument(
        "--root", type=Path, required=True, help="the directory whose contents form the layer"
    )
    parser.add_argument(
        "--prefix", default="", help="where the contents go in the image, e.g. `app/` (default: /)"
    )
    parser.add_argument("--uid", type=int, default=0, help="owner of every entry (default: 0)")
    parser.add_argument("--gid", type=int, default=0, help="group of every entry (default: 0)")
    add_layer_output_arguments(parser)


def _layer_from_dir(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    if not args.root.is_dir():
        raise CommandError(f"--root {args.root} is not a directory.")
    outputs.write(members_from_directory(args.root, prefix=args.prefix, uid=args.uid, gid=args.gid))
    return 0


def _add_assemble_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Assemble an image from a base OCI layout and layer descriptors, as described by an image "
        "spec (see imagetool.spec), into an OCI layout (without the layer blobs, which the caller "
        "links in by digest) and a metadata file. Fails when the image's user names an account "
        "or group that its layers' account files do not define."
    )
    parser.add_argument("--spec", type=Path, required=True, help="the image spec (JSON)")
    parser.add_argument(
        "--out-layout", type=Path, required=True, help="the OCI image layout directory to write"
    )
    parser.add_argument(
        "--out-metadata", type=Path, required=True, help="the image metadata (.image.json) to write"
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


def _add_layer_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read the package records (dpkg status, dist-info) of a layer that no command of ours "
        "wrote, e.g. one pulled from a registry."
    )
    parser.add_argument("--blob", type=Path, required=True, help="the layer (.tar.gz)")
    parser.add_argument("--out", type=Path, required=True, help="the layer's records (JSON) to write")


def _layer_inventory(args: argparse.Namespace) -> int:
    with read_layer_members(args.blob) as members:
        write_json(args.out, layer_inventory(members).to_json())
    return 0


def _add_merge_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the Debian packages and Python distributions an image holds, with versions, from "
        "its layers' package records, bottom layer first."
    )
    parser.add_argument(
        "--layer",
        type=Path,
        action="append",
        required=True,
        help="a layer's records (`--out-inventory` of the command that wrote it); repeatable",
    )
    parser.add_argument("--out", type=Path, required=True, help="the image's inventory (JSON) to write")


def _merge_inventory(args: argparse.Namespace) -> int:
    layers = [LayerInventory.from_json(read_json(path)) for path in args.layer]
    write_json(args.out, [dataclasses.asdict(entry) for entry in merged_inventory(layers)])
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    "layer-inventory": (_add_layer_inventory_arguments, _layer_inventory),
    "merge-inventory": (_add_merge_inventory_arguments, _merge_inventory),
    "layer-from-dir": (_add_layer_from_dir_arguments, _layer_from_dir),
    "assemble": (_add_assemble_arguments, _assemble),
}
