"""What an image contains, as scanners see it: Debian packages (the dpkg status database) and
Python distributions (`*.dist-info`), with versions; and its accounts (`/etc/passwd`,
`/etc/group`), which decide whether its `User` can start a container.

Every layer command records its layer's package records and account files as it writes the
layer (see `commands.LayerOutputs`), so that an image's inventory, and its accounts, are one
small merge of its layers' records. Merging applies the layers bottom to top with OCI
whiteouts, so a record that a later layer deletes or replaces is reported as the image has it,
not as some layer had it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, TypeVar

from imagetool.tarlayer import LayerMember

DPKG_STATUS = "var/lib/dpkg/status"
# The account files a container engine reads to resolve an image's `User`.
ACCOUNT_FILES = ("etc/passwd", "etc/group")
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
    accounts: dict[str, str] = field(default_factory=dict)
    """The text of the `ACCOUNT_FILES` the layer writes, by path."""

    def to_json(self) -> dict:
        return {
            "accounts": dict(sorted(self.accounts.items())),
            "deleted": self.deleted,
            "opaque": self.opaque,
            "records": {
                path: [asdict(e) for e in entries] for path, entries in sorted(self.records.items())
            },
        }

    @classmethod
    def from_json(cls, value: dict) -> LayerInventory:
        return cls(
            records={
                path: [InventoryEntry(**e) for e in entries]
                for path, entries in value["records"].items()
            },
            deleted=list(value["deleted"]),
            opaque=list(value["opaque"]),
            accounts=dict(value["accounts"]),
        )


def layer_inventory(members: Iterable[LayerMember]) -> LayerInventory:
    """The package records of a layer made of `members`, and what its whiteouts delete."""
    inventory = LayerInventory()
    for info, data in members:
        path = posixpath.normpath(info.name).lstrip("/")
        directory, name = posixpath.split(path)
        if name == _OPAQUE_WHITEOUT:
            inventory.opaque.append(directory)
        elif name.startswith(_WHITEOUT):
            inventory.deleted.append(posixpath.join(directory, name[len(_WHITEOUT) :]))
        elif (
            info.isfile()
            and data is not None
            and (path == DPKG_STATUS or _DIST_INFO_METADATA.search(path))
        ):
            inventory.records[path] = _entries(path, data)
        elif info.isfile() and data is not None and path in ACCOUNT_FILES:
            inventory.accounts[path] = data.decode("utf-8", "replace")
    return inventory


def _entries(path: str, content: bytes) -> list[InventoryEntry]:
    # Imported here, not above: every layer step computes an inventory, and each parser is
    # needed only by the layers that hold its file: python-debian's by the dpkg database alone.
    if path == DPKG_STATUS:
        from debian import deb822

        return [
            InventoryEntry("deb", paragraph["Package"], paragraph["Version"], f"/{path}")
            for paragraph in deb822.Deb822.iter_paragraphs(content.decode())
            if paragraph.get("Status", "").endswith(" installed")
        ]
    import email.parser

    metadata = email.parser.BytesHeaderParser().parsebytes(content)
    return [InventoryEntry("python", metadata["Name"], metadata["Version"], f"/{path}")]


def merged_inventory(layers: Iterable[LayerInventory]) -> list[InventoryEntry]:
    """The inventory of the image whose layers, bottom to top, are `layers`."""
    records = _merged(layers, lambda layer: layer.records)
    return sorted(entry for entries in records.values() for entry in entries)


def merged_accounts(layers: Iterable[LayerInventory]) -> dict[str, str]:
    """The text of the `ACCOUNT_FILES` that the image whose layers are `layers` has, by path."""
    return _merged(layers, lambda layer: layer.accounts)


_Record = TypeVar("_Record")


def _merged(
    layers: Iterable[LayerInventory], of_layer: Callable[[LayerInventory], Mapping[str, _Record]]
) -> dict[str, _Record]:
    """The records `of_layer` picks, by path, as the layers leave them, bottom to top."""
    records: dict[str, _Record] = {}
    for layer in layers:
        for hidden in [*layer.opaque, *layer.deleted]:
            for path in [p for p in records if p.startswith(hidden + "/")]:
                del records[path]
        for path in layer.deleted:
            records.pop(path, None)
        records.update(of_layer(layer))
    return records
