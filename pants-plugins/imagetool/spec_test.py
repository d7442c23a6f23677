from __future__ import annotations

import pytest

from esb_contract.image_spec import SpecError
from imagetool.spec import ImageMetadata, LayerSummary, layer_descriptor_fields


def test_layer_descriptor_fields() -> None:
    value = {"digest": "sha256:a", "diff_id": "sha256:b", "size": 3, "media_type": "m"}
    assert layer_descriptor_fields(value, where="layer.json") == value
    with pytest.raises(SpecError, match="layer.json: unknown keys 'extra'"):
        layer_descriptor_fields({**value, "extra": 1}, where="layer.json")


def test_metadata_json() -> None:
    metadata = ImageMetadata(
        digest="sha256:m",
        config_digest="sha256:c",
        repository="esb/hello",
        tags=["latest"],
        layers=[LayerSummary("sha256:l", 9)],
    )
    assert metadata.to_json() == {
        "digest": "sha256:m",
        "config_digest": "sha256:c",
        "repository": "esb/hello",
        "tags": ["latest"],
        "layers": [{"digest": "sha256:l", "size": 9}],
    }
