"""The JSON files that the image tool's commands read and write, as dataclasses.

Formats (all UTF-8 JSON objects; unknown keys are errors, so that a typo fails loudly):

Layer descriptor (written by the layer commands, read by `assemble`), see `tarlayer.LayerBlob`:
    {"digest": "sha256:…", "diff_id": "sha256:…", "size": 1234,
     "media_type": "application/vnd.oci.image.layer.v1.tar+gzip"}

Image spec (read by `assemble`): `esb_contract.image_spec.ImageSpec`, which the backend writes.

Image metadata (written by `assemble` as `<name>.image.json`), see `ImageMetadata`:
    {"digest": "sha256:…", "config_digest": "sha256:…", "repository": "esb/hello",
     "tags": ["latest"], "layers": [{"digest": "sha256:…", "size": 1234}, …],
     "base_digest": "sha256:…"}                               # only with a base

Index metadata (written by `image-index` for an image of several platforms), see
`imagetool.index`: the index's digest, `"media_type"`, the repository and tags, each
platform's image metadata under `"platforms"` (with its `"platform"`, e.g. `linux/arm64`), and
every platform's layers under `"layers"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from esb_contract.image_spec import JsonFields


def layer_descriptor_fields(value: Any, *, where: str) -> dict[str, Any]:
    """The fields of a `imagetool.tarlayer.LayerBlob` in a layer descriptor, checked."""
    fields = JsonFields(value, where)
    checked = {
        "digest": fields.required("digest", str),
        "diff_id": fields.required("diff_id", str),
        "size": fields.required("size", int),
        "media_type": fields.required("media_type", str),
    }
    fields.no_others()
    return checked


def layer_summary_fields(value: Any, *, where: str) -> dict[str, Any]:
    """The fields of a `LayerSummary` in image metadata, checked."""
    fields = JsonFields(value, where)
    checked = {"digest": fields.required("digest", str), "size": fields.required("size", int)}
    fields.no_others()
    return checked


@dataclass(frozen=True)
class LayerSummary:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageMetadata:
    digest: str
    """The manifest's digest: the image's identity."""
    config_digest: str
    repository: str
    tags: Sequence[str]
    layers: Sequence[LayerSummary]
    """All layers, the base's included, bottom first."""
    base_digest: str | None = None
    """The base image's manifest digest."""

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "digest": self.digest,
            "config_digest": self.config_digest,
            "repository": self.repository,
            "tags": list(self.tags),
            "layers": [{"digest": layer.digest, "size": layer.size} for layer in self.layers],
        }
        if self.base_digest is not None:
            value["base_digest"] = self.base_digest
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> ImageMetadata:
        fields = JsonFields(value, where)
        layers = fields.required("layers", list)
        metadata = cls(
            digest=fields.required("digest", str),
            config_digest=fields.required("config_digest", str),
            repository=fields.required("repository", str),
            tags=fields.required("tags", list, of=str),
            layers=[LayerSummary(**layer_summary_fields(layer, where=where)) for layer in layers],
            base_digest=fields.optional("base_digest", str),
        )
        fields.no_others()
        return metadata
