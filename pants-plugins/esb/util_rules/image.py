"""Image assembly: layers and a config → an OCI layout, a docker archive and `.image.json`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from esb.subsystems.image_tool import ImageToolRequest
from esb.util_rules.layers import BuiltLayer
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule

IMAGE_LAYOUT = "image.oci"
IMAGE_ARCHIVE = "image.docker.tar"
IMAGE_METADATA = "image.image.json"
_BASE_LAYOUT = "base.oci"


@dataclass(frozen=True)
class BuiltImage:
    """A digest with `image.oci/`, `image.docker.tar` and `image.image.json` at its root."""

    digest: Digest
    metadata_json: str

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json)

    @property
    def image_digest(self) -> str:
        return self.metadata["digest"]


@dataclass(frozen=True)
class ImageAssemblyRequest:
    """`config_json` holds the OCI config fields (Entrypoint, Cmd, ...) that this image sets over
    its base's; its `Env` is a name → value mapping merged over the base's variables by the tool.
    """

    description: str
    repository: str
    tags: tuple[str, ...]
    architecture: str
    config_json: str
    layers: tuple[BuiltLayer, ...]
    base: BuiltImage | None = None


def assembly_spec(request: ImageAssemblyRequest, layer_dirs: tuple[str, ...]) -> dict[str, Any]:
    return {
        "architecture": request.architecture,
        "base_layout": _BASE_LAYOUT if request.base else None,
        "config": json.loads(request.config_json),
        "layers": list(layer_dirs),
        "os": "linux",
        "repository": request.repository,
        "tags": list(request.tags),
    }


@rule
async def assemble_image(request: ImageAssemblyRequest) -> BuiltImage:
    layer_dirs = tuple(f"layers/{i:02d}-{layer.name}" for i, layer in enumerate(request.layers))
    spec = json.dumps(assembly_spec(request, layer_dirs), sort_keys=True, indent=2).encode()
    prefixed = await MultiGet(
        Get(Digest, AddPrefix(layer.digest, directory))
        for layer, directory in zip(request.layers, layer_dirs)
    )
    base_inputs = []
    if request.base:
        base_inputs.append(
            await Get(Digest, AddPrefix(await _layout_only(request.base), _BASE_LAYOUT))
        )
    spec_digest = await Get(Digest, CreateDigest([FileContent("spec.json", spec)]))
    inputs = await Get(Digest, MergeDigests([spec_digest, *prefixed, *base_inputs]))
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(
                "assemble",
                "--spec",
                "spec.json",
                "--out-layout",
                IMAGE_LAYOUT,
                "--out-archive",
                IMAGE_ARCHIVE,
                "--out-metadata",
                IMAGE_METADATA,
            ),
            description=request.description,
            input_digest=inputs,
            output_files=(IMAGE_ARCHIVE, IMAGE_METADATA),
            output_directories=(IMAGE_LAYOUT,),
        ),
    )
    result = await Get(ProcessResult, Process, process)
    metadata_only = await Get(
        Digest, DigestSubset(result.output_digest, PathGlobs([IMAGE_METADATA]))
    )
    contents = await Get(DigestContents, Digest, metadata_only)
    return BuiltImage(result.output_digest, contents[0].content.decode())


async def _layout_only(image: BuiltImage) -> Digest:
    subset = await Get(Digest, DigestSubset(image.digest, PathGlobs([f"{IMAGE_LAYOUT}/**"])))
    return await Get(Digest, RemovePrefix(subset, IMAGE_LAYOUT))


def config_json(**fields: Any) -> str:
    return json.dumps(fields, sort_keys=True)


def rules():
    return collect_rules()
