from __future__ import annotations

import json
import tarfile
from pathlib import Path

from imagetool.inventory import (
    InventoryEntry,
    LayerInventory,
    layer_inventory,
    merged_accounts,
    merged_inventory,
)
from imagetool.tarlayer import read_layer_members, write_layer

_STATUS = b"""Package: libc6
Status: install ok installed
Version: 2.36-9+deb12u13

Package: removed-thing
Status: deinstall ok config-files
Version: 1.0

Package: python3.11
Status: install ok installed
Version: 3.11.2-6+deb12u6
"""


def _file(path: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(path)
    info.size = len(content)
    info.mode = 0o644
    return info, content


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nLong description\n".encode()


def _layer(members: list[tuple[tarfile.TarInfo, bytes]]) -> LayerInventory:
    inventory = layer_inventory(members)
    assert LayerInventory.from_json(json.loads(json.dumps(inventory.to_json()))) == inventory
    return inventory


def test_inventory_lists_installed_debs_and_venv_distributions() -> None:
    site = ".venv/lib/python3.11/site-packages"
    layers = [
        _layer([_file("var/lib/dpkg/status", _STATUS)]),
        _layer(
            [
                _file(
                    f"{site}/starlette-1.10.0.dist-info/METADATA", _metadata("starlette", "1.10.0")
                ),
                _file(f"{site}/old-1.0.dist-info/METADATA", _metadata("old", "1.0")),
                _file(f"{site}/starlette/__init__.py", b""),
            ],
        ),
        # A later layer deletes a distribution, as `pip uninstall` in a Dockerfile would.
        _layer([_file(f"{site}/.wh.old-1.0.dist-info", b"")]),
    ]
    assert merged_inventory(layers) == [
        InventoryEntry("deb", "libc6", "2.36-9+deb12u13", "/var/lib/dpkg/status"),
        InventoryEntry("deb", "python3.11", "3.11.2-6+deb12u6", "/var/lib/dpkg/status"),
        InventoryEntry(
            "python", "starlette", "1.10.0", f"/{site}/starlette-1.10.0.dist-info/METADATA"
        ),
    ]


def test_opaque_whiteout_hides_lower_records() -> None:
    site = ".venv/lib/python3.11/site-packages"
    layers = [
        _layer([_file(f"{site}/a-1.dist-info/METADATA", _metadata("a", "1"))]),
        _layer(
            [
                _file(".venv/.wh..wh..opq", b""),
                _file(f"{site}/b-2.dist-info/METADATA", _metadata("b", "2")),
            ]
        ),
    ]
    assert [(e.name, e.version) for e in merged_inventory(layers)] == [("b", "2")]


def test_records_read_back_from_a_written_layer(tmp_path: Path) -> None:
    members = [
        _file("var/lib/dpkg/status", _STATUS),
        _file("usr/bin/python3.11", b"\x7fELF"),
    ]
    blob = tmp_path / "layer.tar.gz"
    write_layer(members, blob, mtime=0)
    with read_layer_members(blob) as read_back:
        assert layer_inventory(read_back) == layer_inventory(members)


def test_account_files_are_recorded_and_merged_as_the_layers_leave_them() -> None:
    layers = [
        _layer([_file("etc/passwd", b"root:x:0:0\n"), _file("etc/group", b"root:x:0:\n")]),
        _layer([_file("etc/passwd", b"root:x:0:0\nesb:*:10001:10001\n"), _file("etc/hosts", b"")]),
        _layer([_file("etc/.wh.group", b"")]),
    ]
    assert layers[1].accounts == {"etc/passwd": "root:x:0:0\nesb:*:10001:10001\n"}
    assert merged_accounts(layers) == {"etc/passwd": "root:x:0:0\nesb:*:10001:10001\n"}
    assert merged_inventory(layers) == []
