"""What an image contains, as scanners see it: Debian packages (the dpkg status database) and
Python distributions (`*.dist-info`), with versions.

Each layer is read once, on its own (`layer-inventory`), so that an image's inventory costs
one small merge (`merge-inventory`) when only its top layer changed. Merging applies the layers
bottom to top with OCI whiteouts, so a record that a later layer deletes or replaces is
reported as the image has it, not as some layer had it.
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import posixpath
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from debian import deb822

from imagetool.commands import AddArguments, Run, read_json, write_json

DPKG_STATUS = "var/lib/dpkg/status"
_DIST_INFO_METADATA = re.compile(r"(?:^|/)site-packages/[^/]+\.dist-info/METADATA$")
_WHITEOUT = ".wh."
_OPAQUE_WHITEOUT = ".wh..wh..opq"


@dataclass(frozen=True, order=True)
class InventoryEntry:
    kind: str
    """`deb` or `python`."""
    name: str
    version: str
    location: str
    """The file that records it: the dpkg status file, or the distribution's METADATA."""


@dataclass
class LayerInventory:
    """The package records one layer adds, and what it deletes from the layers below."""

    records: dict[str, list[InventoryEntry]] = field(default_factory=dict)
    """Entries by the path of the file that records them."""
    deleted: list[str] = field(default_factory=list)
    """Paths whiteouts delete, with everything under them."""
    opaque: list[str] = field(default_factory=list)
    """Directories whose lower-layer contents an opaque whiteout hides."""

    def to_json(self) -> dict:
        return {
            "deleted": self.deleted,
            "opaque": self.opaque,
            "records": {path: [asdict(e) for e in entries] for path, entries in sorted(self.records.items())},
        }

    @classmethod
    def from_json(cls, value: dict) -> LayerInventory:
        return cls(
            records={path: [InventoryEntry(**e) for e in entries] for path, entries in value["records"].items()},
            deleted=list(value["deleted"]),
            opaque=list(value["opaque"]),
        )


def layer_inventory(blob: Path) -> LayerInventory:
    inventory = LayerInventory()
    with gzip.open(blob) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = posixpath.normpath(member.name).lstrip("/")
            directory, name = posixpath.split(path)
            if name == _OPAQUE_WHITEOUT:
                inventory.opaque.append(directory)
            elif name.startswith(_WHITEOUT):
                inventory.deleted.append(posixpath.join(directory, name[len(_WHITEOUT) :]))
            elif member.isfile() and (path == DPKG_STATUS or _DIST_INFO_METADATA.search(path)):
                inventory.records[path] = _entries(path, tar.extractfile(member).read())
    return inventory


def _entries(path: str, content: bytes) -> list[InventoryEntry]:
    if path == DPKG_STATUS:
        return [
            InventoryEntry("deb", paragraph["Package"], paragraph["Version"], f"/{path}")
            for paragraph in deb822.Deb822.iter_paragraphs(content.decode())
            if paragraph.get("Status", "").endswith(" installed")
        ]
    metadata = email.parser.BytesHeaderParser().parsebytes(content)
    return [InventoryEntry("python", metadata["Name"], metadata["Version"], f"/{path}")]


def merged_inventory(layers: Iterable[LayerInventory]) -> list[InventoryEntry]:
    """The inventory of the image whose layers, bottom to top, are `layers`."""
    records: dict[str, list[InventoryEntry]] = {}
    for layer in layers:
        for hidden in [*layer.opaque, *layer.deleted]:
            for path in [p for p in records if p.startswith(hidden + "/")]:
                del records[path]
        for path in layer.deleted:
            records.pop(path, None)
        records.update(layer.records)
    return sorted(entry for entries in records.values() for entry in entries)


def _add_layer_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Read the package records (dpkg status, dist-info) of one layer."
    parser.add_argument("--blob", type=Path, required=True, help="the layer (.tar.gz)")
    parser.add_argument("--out", type=Path, required=True, help="the layer's inventory (JSON) to write")


def _layer_inventory(args: argparse.Namespace) -> int:
    write_json(args.out, layer_inventory(args.blob).to_json())
    return 0


def _add_merge_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the Debian packages and Python distributions an image holds, with versions, from "
        "its layers' inventories."
    )
    parser.add_argument(
        "--layer", type=Path, action="append", required=True, help="a layer's inventory, bottom first (repeatable)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the image's inventory (JSON) to write")


def _merge_inventory(args: argparse.Namespace) -> int:
    layers = [LayerInventory.from_json(read_json(path)) for path in args.layer]
    write_json(args.out, [asdict(entry) for entry in merged_inventory(layers)])
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    "layer-inventory": (_add_layer_inventory_arguments, _layer_inventory),
    "merge-inventory": (_add_merge_inventory_arguments, _merge_inventory),
}
