"""Image assembly: layers, the app layer's files and a config → an OCI layout, `.image.json` and
the image's inventory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    FileEntry,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule

from esb.subsystems.image_tool import ImageToolRequest
from esb.util_rules.layers import (
    LAYER_DESCRIPTOR,
    LAYER_INVENTORY,
    BuiltLayer,
    layer_blob_entry,
)
from esb.util_rules.platform import BasePlatform
from esb_contract import commands, flags
from esb_contract.image_spec import (
    AppLayer,
    BaseImage,
    ConfigChanges,
    ImageSpec,
    LayerInput,
    Platform,
)
from esb_contract.messages import tool_message

IMAGE_LAYOUT = "image.oci"
IMAGE_BLOBS = f"{IMAGE_LAYOUT}/blobs/sha256"
IMAGE_METADATA = "image.image.json"
IMAGE_INVENTORY = "image.inventory.json"
_BASE_LAYOUT = "base.oci"
_APP_DIRECTORY = "app"
# The app layer's records, in a directory of their own, as each layer step's digest holds them.
_APP_LAYER_DIRECTORY = "app-layer"
_APP_LAYER_INVENTORY = f"{_APP_LAYER_DIRECTORY}/{LAYER_INVENTORY}"


@dataclass(frozen=True)
class BuiltImage:
    """A digest with `image.oci/` (a complete OCI layout, with the `manifest.json` that
    `docker load` reads), `image.image.json` and `image.inventory.json` at its root."""

    digest: Digest
    metadata_json: str
    layer_inventories: tuple[Digest, ...]
    """Each layer's package records (`--out-inventory` of the layer commands), bottom first, base layers included."""

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json)

    @property
    def image_digest(self) -> str:
        return self.metadata["digest"]

    @property
    def layer_blob_paths(self) -> tuple[str, ...]:
        return tuple(
            blob_path(layer["digest"].partition(":")[2]) for layer in self.metadata["layers"]
        )


def blob_path(hex_digest: str) -> str:
    return f"{IMAGE_BLOBS}/{hex_digest}"


@dataclass(frozen=True)
class AppLayerFiles:
    """The files of the image's top layer (at the digest's root), shipped under `/app`, which
    the assembly writes itself: one process and one cache lookup per image fewer than a layer
    step of their own, and the assembly runs whenever they change anyway."""

    files: Digest
    platform: BasePlatform
    """The base's Python, for which the assembly compiles their modules."""
    build_file_patterns: tuple[str, ...]
    """Pants' `[GLOBAL].build_patterns`: files that never ship."""

    def spec(self) -> AppLayer:
        return AppLayer(
            directory=_APP_DIRECTORY,
            created_by=BuiltLayer("app", EMPTY_DIGEST).created_by,
            python_version=self.platform.python_version,
            python_platform=self.platform.uv_python_platform,
            interpreter=self.platform.interpreter,
            build_file_patterns=self.build_file_patterns,
        )


@dataclass(frozen=True)
class ImageAssemblyRequest:
    """`config_json` holds the config changes this image makes over its base's (`config_json`
    of an `esb_contract.image_spec.ConfigChanges`)."""

    description: str
    repository: str
    tags: tuple[str, ...]
    architecture: str
    config_json: str
    layers: tuple[BuiltLayer, ...]
    base: BuiltImage | None = None
    created: int | None = None
    """Seconds since the epoch; None leaves it to the image tool (the epoch)."""
    app: Optional[AppLayerFiles] = None
    """The files of the image's top layer, above `layers`."""


def assembly_spec(
    request: ImageAssemblyRequest, layer_dirs: tuple[str, ...], inventories: tuple[str, ...]
) -> dict[str, Any]:
    """The `assemble` command's image spec; `inventories` are the paths of every layer's
    records, the base's included, from which it checks the image's user."""
    spec = ImageSpec(
        repository=request.repository,
        tags=request.tags,
        layers=[
            LayerInput(f"{directory}/{LAYER_DESCRIPTOR}", layer.created_by)
            for layer, directory in zip(request.layers, layer_dirs)
        ],
        config=ConfigChanges.from_json(json.loads(request.config_json), where="config_json"),
        base=BaseImage(_BASE_LAYOUT) if request.base else None,
        platform=None if request.base else Platform(request.architecture),
        created=request.created,
        layer_inventories=inventories,
        app=request.app.spec() if request.app else None,
    )
    return spec.to_json()


@dataclass(frozen=True)
class _LayerInventoryInputs:
    """Every layer's records at `paths` of `digest`, bottom layer first."""

    digest: Digest
    paths: tuple[str, ...]


async def _layer_inventory_inputs(layer_inventories: tuple[Digest, ...]) -> _LayerInventoryInputs:
    directories = tuple(f"inventories/{i:03d}" for i in range(len(layer_inventories)))
    inputs = await MultiGet(
        Get(Digest, AddPrefix(digest, directory))
        for digest, directory in zip(layer_inventories, directories)
    )
    return _LayerInventoryInputs(
        await Get(Digest, MergeDigests(inputs)),
        tuple(f"{directory}/{LAYER_INVENTORY}" for directory in directories),
    )


async def _layout_without_layer_blobs(image: BuiltImage) -> Digest:
    """What `assemble` reads of a base: its index, manifest and config (kilobytes, not the
    layers' megabytes)."""
    excluded = [f"!{path}" for path in image.layer_blob_paths]
    subset = await Get(
        Digest, DigestSubset(image.digest, PathGlobs([f"{IMAGE_LAYOUT}/**", *excluded]))
    )
    return await Get(Digest, RemovePrefix(subset, IMAGE_LAYOUT))


async def _layer_blobs(request: ImageAssemblyRequest) -> Digest:
    """Every layer blob of the image at its place in the layout, by reference: the base's as they
    are in its layout, ours named by the sha256 that Pants keeps of every file (the OCI digest)."""
    own = await MultiGet(Get(DigestEntries, Digest, layer.digest) for layer in request.layers)
    entries = [
        FileEntry(blob_path(blob.file_digest.fingerprint), blob.file_digest)
        for blob in map(layer_blob_entry, own)
    ]
    inherited = []
    if request.base:
        inherited.append(
            await Get(
                Digest, DigestSubset(request.base.digest, PathGlobs(request.base.layer_blob_paths))
            )
        )
    return await Get(Digest, MergeDigests([await Get(Digest, CreateDigest(entries)), *inherited]))


class ImageAssemblyError(Exception):
    pass


def assembly_failure_message(description: str, exit_code: int, stderr: str) -> str:
    """The image tool's own message (it names the field or file and the fix), introduced by
    the step, which names the target."""
    return f"{description} failed:\n\n{tool_message(exit_code, stderr)}"


@rule
async def assemble_image(request: ImageAssemblyRequest) -> BuiltImage:
    layer_dirs = tuple(f"layers/{i:02d}-{layer.name}" for i, layer in enumerate(request.layers))
    own_inventories = await MultiGet(
        Get(Digest, DigestSubset(layer.digest, PathGlobs([LAYER_INVENTORY])))
        for layer in request.layers
    )
    layer_inventories = (
        *(request.base.layer_inventories if request.base else ()),
        *own_inventories,
    )
    inventories = await _layer_inventory_inputs(layer_inventories)
    spec = json.dumps(
        assembly_spec(request, layer_dirs, inventories.paths), sort_keys=True, indent=2
    ).encode()
    descriptors = await MultiGet(
        Get(Digest, DigestSubset(layer.digest, PathGlobs([LAYER_DESCRIPTOR])))
        for layer in request.layers
    )
    prefixed = await MultiGet(
        Get(Digest, AddPrefix(descriptor, directory))
        for descriptor, directory in zip(descriptors, layer_dirs)
    )
    base_inputs = []
    if request.base:
        base_inputs.append(
            await Get(
                Digest, AddPrefix(await _layout_without_layer_blobs(request.base), _BASE_LAYOUT)
            )
        )
    spec_digest = await Get(Digest, CreateDigest([FileContent("spec.json", spec)]))
    app_inputs = (
        [await Get(Digest, AddPrefix(request.app.files, _APP_DIRECTORY))] if request.app else []
    )
    inputs = await Get(
        Digest,
        MergeDigests([spec_digest, inventories.digest, *prefixed, *base_inputs, *app_inputs]),
    )
    app_outputs = (_APP_LAYER_INVENTORY,) if request.app else ()
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(
                commands.ASSEMBLE,
                flags.SPEC,
                "spec.json",
                flags.OUT_LAYOUT,
                IMAGE_LAYOUT,
                flags.OUT_METADATA,
                IMAGE_METADATA,
                flags.OUT_INVENTORY,
                IMAGE_INVENTORY,
                *((flags.OUT_APP_INVENTORY, _APP_LAYER_INVENTORY) if request.app else ()),
            ),
            description=request.description,
            input_digest=inputs,
            output_files=(IMAGE_METADATA, IMAGE_INVENTORY, *app_outputs),
            output_directories=(IMAGE_LAYOUT,),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise ImageAssemblyError(
            assembly_failure_message(
                request.description, result.exit_code, result.stderr.decode(errors="replace")
            )
        )
    image_files, metadata_only, app_inventory = await MultiGet(
        Get(
            Digest,
            DigestSubset(
                result.output_digest,
                PathGlobs([f"{IMAGE_LAYOUT}/**", IMAGE_METADATA, IMAGE_INVENTORY]),
            ),
        ),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([IMAGE_METADATA]))),
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([_APP_LAYER_INVENTORY]))),
    )
    contents = await Get(DigestContents, Digest, metadata_only)
    image = await Get(Digest, MergeDigests([image_files, await _layer_blobs(request)]))
    if request.app:
        layer_inventories += (await Get(Digest, RemovePrefix(app_inventory, _APP_LAYER_DIRECTORY)),)
    return BuiltImage(image, contents[0].content.decode(), layer_inventories)


@dataclass(frozen=True)
class ImageIndexRequest:
    """One image's builds for several platforms, to hold in one OCI image index."""

    description: str
    images: tuple[BuiltImage, ...]


@rule
async def index_image(request: ImageIndexRequest) -> BuiltImage:
    """The image whose identity is the index over `images`: its layout holds the index and every
    platform's manifest, config and layers; its metadata lists each platform's."""
    directories = tuple(f"platforms/{i}" for i in range(len(request.images)))
    small_files = await MultiGet(
        Get(
            Digest,
            DigestSubset(image.digest, PathGlobs([IMAGE_METADATA, IMAGE_INVENTORY])),
        )
        for image in request.images
    )
    staged = []
    for image, files, directory in zip(request.images, small_files, directories):
        layout = await Get(
            Digest, AddPrefix(await _layout_without_layer_blobs(image), IMAGE_LAYOUT)
        )
        merged = await Get(Digest, MergeDigests([files, layout]))
        staged.append(await Get(Digest, AddPrefix(merged, directory)))
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(
                commands.IMAGE_INDEX,
                *(a for d in directories for a in (flags.LAYOUT, f"{d}/{IMAGE_LAYOUT}")),
                *(a for d in directories for a in (flags.METADATA, f"{d}/{IMAGE_METADATA}")),
                *(a for d in directories for a in (flags.INVENTORY, f"{d}/{IMAGE_INVENTORY}")),
                flags.OUT_LAYOUT,
                IMAGE_LAYOUT,
                flags.OUT_METADATA,
                IMAGE_METADATA,
                flags.OUT_INVENTORY,
                IMAGE_INVENTORY,
            ),
            description=request.description,
            input_digest=await Get(Digest, MergeDigests(staged)),
            output_files=(IMAGE_METADATA, IMAGE_INVENTORY),
            output_directories=(IMAGE_LAYOUT,),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise ImageAssemblyError(
            assembly_failure_message(
                request.description, result.exit_code, result.stderr.decode(errors="replace")
            )
        )
    blobs = await MultiGet(
        Get(Digest, DigestSubset(image.digest, PathGlobs([f"{IMAGE_BLOBS}/*"])))
        for image in request.images
    )
    metadata = await Get(
        DigestContents, DigestSubset(result.output_digest, PathGlobs([IMAGE_METADATA]))
    )
    layout = await Get(Digest, MergeDigests([result.output_digest, *blobs]))
    return BuiltImage(layout, metadata[0].content.decode(), ())


def config_json(changes: ConfigChanges) -> str:
    """`changes` as an `ImageAssemblyRequest` holds them: a request must be hashable."""
    return json.dumps(changes.to_json(), sort_keys=True)


def rules():
    return collect_rules()
