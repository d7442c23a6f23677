from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from esb_contract.image_spec import Platform
from esb_contract.media_types import INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from imagetool.cli import main
from imagetool.conftest import make_layout, regular
from imagetool.oci import OciLayout
from imagetool.spec import ImageMetadata, LayerSummary


def platform_image(root: Path, architecture: str, name: str = "esb/api") -> Path:
    """A directory with one platform's `image.oci`, `image.image.json` and inventory."""
    directory = root / architecture
    directory.mkdir()
    layout = make_layout(
        directory, [[regular("bin/tool", architecture.encode())]], architecture=architecture
    )
    image = OciLayout(layout).load_image()
    config = json.loads(image.layout.read_blob(image.manifest))["config"]["digest"]
    metadata = ImageMetadata(
        digest=image.manifest.digest,
        config_digest=config,
        repository=name,
        tags=["1.0"],
        layers=[LayerSummary(layer.digest, layer.size) for layer in image.layers],
    )
    (directory / "image.image.json").write_text(json.dumps(metadata.to_json()))
    (directory / "image.inventory.json").write_text(json.dumps({"layers": [architecture]}))
    return directory


def index(out: Path, *images: Path) -> int:
    return main(
        [
            "image-index",
            *(arg for image in images for arg in ("--layout", str(image / "layout"))),
            *(arg for image in images for arg in ("--metadata", str(image / "image.image.json"))),
            *(arg for image in images for arg in ("--inventory", str(image / "image.inventory.json"))),
            "--out-layout", str(out / "image.oci"),
            "--out-metadata", str(out / "image.image.json"),
            "--out-inventory", str(out / "image.inventory.json"),
        ]
    )  # fmt: skip


def test_an_index_holds_each_platforms_manifest_and_is_the_images_identity(
    tmp_path: Path,
) -> None:
    amd64, arm64 = platform_image(tmp_path, "amd64"), platform_image(tmp_path, "arm64")
    out = tmp_path / "out"
    assert index(out, arm64, amd64) == 0
    metadata = json.loads((out / "image.image.json").read_text())
    layout = OciLayout(out / "image.oci")
    (top,) = json.loads((out / "image.oci/index.json").read_text())["manifests"]
    assert (top["mediaType"], top["digest"]) == (INDEX_MEDIA_TYPE, metadata["digest"])
    assert top["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    manifests = json.loads(layout.blob_path(metadata["digest"]).read_bytes())["manifests"]
    assert [(m["mediaType"], m["platform"]) for m in manifests] == [
        (MANIFEST_MEDIA_TYPE, {"architecture": "amd64", "os": "linux"}),
        (MANIFEST_MEDIA_TYPE, {"architecture": "arm64", "os": "linux"}),
    ]
    assert [p["platform"] for p in metadata["platforms"]] == ["linux/amd64", "linux/arm64"]
    assert (metadata["repository"], metadata["tags"]) == ("esb/api", ["1.0"])
    assert json.loads((out / "image.inventory.json").read_text()) == {
        "platforms": {"linux/amd64": {"layers": ["amd64"]}, "linux/arm64": {"layers": ["arm64"]}}
    }
    # With the platforms' layer blobs merged in, as the backend does, each platform loads.
    for image in (amd64, arm64):
        for blob in (image / "layout/blobs/sha256").iterdir():
            shutil.copyfile(blob, out / "image.oci/blobs/sha256" / blob.name)
    loaded = layout.load_image(platform=Platform("arm64"))
    assert loaded.config["architecture"] == "arm64"
    assert {layer["digest"] for layer in metadata["layers"]} == {
        layer["digest"] for entry in metadata["platforms"] for layer in entry["layers"]
    }


def test_the_index_is_the_same_whatever_order_the_platforms_come_in(tmp_path: Path) -> None:
    amd64, arm64 = platform_image(tmp_path, "amd64"), platform_image(tmp_path, "arm64")
    assert index(tmp_path / "one", amd64, arm64) == 0
    assert index(tmp_path / "two", arm64, amd64) == 0
    for name in ("image.image.json", "image.inventory.json", "image.oci/index.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_two_images_of_one_platform_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amd64 = platform_image(tmp_path, "amd64")
    assert index(tmp_path / "out", amd64, amd64) == 1
    assert capsys.readouterr().err == "Two of the images to index are for linux/amd64.\n"


def test_images_of_different_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amd64 = platform_image(tmp_path, "amd64")
    arm64 = platform_image(tmp_path, "arm64", name="esb/other")
    assert index(tmp_path / "out", amd64, arm64) == 1
    assert "The images to index are of different names" in capsys.readouterr().err
