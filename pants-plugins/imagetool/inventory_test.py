from __future__ import annotations

import tarfile
from io import BytesIO
from pathlib import Path

from imagetool.commands import assemble, write_layer_descriptor
from imagetool.inventory import InventoryEntry, inventory
from imagetool.oci import OciLayout, Platform
from imagetool.spec import ImageSpec, LayerInput
from imagetool.tarlayer import write_layer

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


def _image(tmp_path: Path, layers: list[list[tuple[tarfile.TarInfo, bytes]]]) -> OciLayout:
    inputs = []
    for index, members in enumerate(layers):
        blob, descriptor = tmp_path / f"{index}.tar.gz", tmp_path / f"{index}.json"
        write_layer_descriptor(write_layer(members, blob, mtime=0), descriptor)
        inputs.append(LayerInput(descriptor=str(descriptor), blob=str(blob), created_by=f"layer {index}"))
    spec = ImageSpec(repository="t/inv", tags=["latest"], layers=inputs, platform=Platform("amd64"))
    assemble(spec, created=0, layout_dir=tmp_path / "oci", archive_path=tmp_path / "image.tar")
    return OciLayout(tmp_path / "oci")


def test_inventory_lists_installed_debs_and_venv_distributions(tmp_path: Path) -> None:
    site = ".venv/lib/python3.11/site-packages"
    layout = _image(
        tmp_path,
        [
            [_file("var/lib/dpkg/status", _STATUS)],
            [
                _file(f"{site}/starlette-1.10.0.dist-info/METADATA", _metadata("starlette", "1.10.0")),
                _file(f"{site}/old-1.0.dist-info/METADATA", _metadata("old", "1.0")),
            ],
            # A later layer deletes a distribution, as `pip uninstall` in a Dockerfile would.
            [_file(f"{site}/.wh.old-1.0.dist-info", b"")],
        ],
    )
    assert inventory(layout) == [
        InventoryEntry("deb", "libc6", "2.36-9+deb12u13", "/var/lib/dpkg/status"),
        InventoryEntry("deb", "python3.11", "3.11.2-6+deb12u6", "/var/lib/dpkg/status"),
        InventoryEntry("python", "starlette", "1.10.0", f"/{site}/starlette-1.10.0.dist-info/METADATA"),
    ]
