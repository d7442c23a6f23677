"""The image tool's core commands: `layer-from-dir` and `assemble`.

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`.
Every input is a file or an argument and every output a file, so a run is a cacheable process.
Time comes from `--mtime` or the spec's `created`, else `SOURCE_DATE_EPOCH`, else 0: the
library itself never reads the clock or the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from imagetool.oci import (
    BASE_DIGEST_ANNOTATION,
    CONFIG_MEDIA_TYPE,
    CONTAINERD_NAME_ANNOTATION,
    MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
    Descriptor,
    LoadedImage,
    OciError,
    OciLayout,
    Platform,
    build_image_config,
    build_manifest,
    fully_qualified,
    image_reference,
    oci_layer_descriptor,
    write_docker_archive,
)
from imagetool.spec import ImageMetadata, ImageSpec, LayerSummary, SpecError, layer_descriptor_fields
from imagetool.tarlayer import LayerBlob, LayerError, members_from_directory, write_layer

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class CommandError(ValueError):
    """An input file is missing or is not what the command needs."""


def write_layer_descriptor(blob: LayerBlob, path: Path) -> None:
    """Write the layer descriptor JSON file that `assemble` reads (see `imagetool.spec`)."""
    path.write_text(json.dumps(dataclasses.asdict(blob), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_layer_descriptor(path: Path) -> LayerBlob:
    return LayerBlob(**layer_descriptor_fields(_read_json(path), where=str(path)))


def assemble(spec: ImageSpec, *, created: int, layout_dir: Path, archive_path: Path) -> ImageMetadata:
    """Build the image `spec` describes into an OCI layout directory and a docker archive."""
    references = [image_reference(spec.repository, tag) for tag in spec.tags]
    base = _load_base(spec)
    platform = _image_platform(spec, base)
    new_layers = [(read_layer_descriptor(Path(layer.descriptor)), layer) for layer in spec.layers]

    layout = OciLayout.create(layout_dir)
    layers = []
    if base is not None:
        for layer in base.layers:
            layout.import_blob(base.layout.blob_path(layer.digest), layer)
            layers.append(oci_layer_descriptor(layer, where=f"base {spec.base.layout}"))
    for blob, layer in new_layers:
        descriptor = oci_layer_descriptor(
            Descriptor(blob.media_type, blob.digest, blob.size), where=layer.descriptor
        )
        layout.import_blob(Path(layer.blob), descriptor)
        layers.append(descriptor)

    config = layout.add_json_blob(
        CONFIG_MEDIA_TYPE,
        build_image_config(
            platform=platform,
            diff_ids=[blob.diff_id for blob, _ in new_layers],
            created_by=[layer.created_by for _, layer in new_layers],
            changes=spec.config,
            created=created,
            base_config=base.config if base is not None else None,
        ),
    )
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
    write_docker_archive(layout, manifest, references, archive_path, mtime=created)
    return ImageMetadata(
        digest=manifest.digest,
        config_digest=config.digest,
        repository=spec.repository,
        tags=list(spec.tags),
        layers=[LayerSummary(layer.digest, layer.size) for layer in layers],
        base_digest=base.manifest.digest if base is not None else None,
    )


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
    parser.add_argument(
        "--mtime",
        type=int,
        default=None,
        help="timestamp of every entry, in seconds since the epoch (default: $SOURCE_DATE_EPOCH, else 0)",
    )
    parser.add_argument("--out-blob", type=Path, required=True, help="the layer blob (.tar.gz) to write")
    parser.add_argument(
        "--out-descriptor", type=Path, required=True, help="the layer descriptor (JSON) to write"
    )


def _layer_from_dir(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise CommandError(f"--root {args.root} is not a directory.")
    members = members_from_directory(args.root, prefix=args.prefix, uid=args.uid, gid=args.gid)
    blob = write_layer(members, args.out_blob, mtime=_timestamp(args.mtime))
    write_layer_descriptor(blob, args.out_descriptor)
    return 0


def _add_assemble_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Assemble an image from a base OCI layout and layer blobs, as described by an image spec "
        "(see imagetool.spec), into an OCI layout, a docker archive and a metadata file."
    )
    parser.add_argument("--spec", type=Path, required=True, help="the image spec (JSON)")
    parser.add_argument(
        "--out-layout", type=Path, required=True, help="the OCI image layout directory to write"
    )
    parser.add_argument("--out-archive", type=Path, required=True, help="the docker archive (.tar) to write")
    parser.add_argument(
        "--out-metadata", type=Path, required=True, help="the image metadata (.image.json) to write"
    )


def _assemble(args: argparse.Namespace) -> int:
    spec = ImageSpec.from_json(_read_json(args.spec), where=str(args.spec))
    metadata = assemble(
        spec, created=_timestamp(spec.created), layout_dir=args.out_layout, archive_path=args.out_archive
    )
    args.out_metadata.write_text(
        json.dumps(metadata.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return 0


def _timestamp(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise CommandError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since the epoch.")
    return int(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        raise CommandError(f"Cannot read {path}: {e.strerror}.") from e
    except ValueError as e:
        raise CommandError(f"{path} is not valid JSON: {e}.") from e


def _reporting_errors(name: str, run: Run) -> Run:
    """Input errors become one line on stderr and exit status 1, not a traceback."""

    def checked(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (CommandError, LayerError, OciError, SpecError) as e:
            print(f"imagetool {name}: {e}", file=sys.stderr)
            return 1

    return checked


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    "layer-from-dir": (_add_layer_from_dir_arguments, _reporting_errors("layer-from-dir", _layer_from_dir)),
    "assemble": (_add_assemble_arguments, _reporting_errors("assemble", _assemble)),
}
