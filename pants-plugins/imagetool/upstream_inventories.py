"""The package records of each layer of an upstream image, for the image's inventory, as our
own layer commands record them for the layers they write.
"""

from __future__ import annotations

from pathlib import Path

from imagetool.commands import write_json
from imagetool.image_files import layer_members
from imagetool.inventory import ACCOUNT_FILES, layer_inventory
from imagetool.oci import LoadedImage
from imagetool.upstream_platform import DPKG_STATUS

LAYER_INVENTORY = "layer.inventory.json"


def package_record_files(path: str) -> bool:
    """A superset of the files whose data `inventory.layer_inventory` reads."""
    return (
        path == DPKG_STATUS
        or path in ACCOUNT_FILES
        or (path.endswith("/METADATA") and ".dist-info/" in path)
    )


def write_layer_inventories(image: LoadedImage, out_dir: Path) -> list[Path]:
    """Each layer's package records, as a layer command writes them for its own layers, to
    `out_dir/<index, 3 digits>/layer.inventory.json`, bottom layer first."""
    written = []
    for index, layer in enumerate(image.layers):
        where = f"layer {index} ({layer.digest}) of {image.layout.root}"
        records = layer_inventory(layer_members(image.layout, layer, package_record_files, where))
        path = out_dir / f"{index:03d}" / LAYER_INVENTORY
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, records.to_json())
        written.append(path)
    return written
