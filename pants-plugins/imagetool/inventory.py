"""What an image contains, as scanners see it: Debian packages (the dpkg status database) and
Python distributions (`*.dist-info`), with versions, read from the image's layers.

Layers are applied bottom to top with OCI whiteouts, so a file a later layer deletes or
replaces is reported as the image has it, not as some layer had it.
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import posixpath
import re
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from debian import deb822

from imagetool.commands import AddArguments, Run, write_json
from imagetool.oci import OciLayout

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


def image_files(layout: OciLayout, wanted: re.Pattern[str]) -> dict[str, bytes]:
    """The image's regular files whose path matches `wanted`, as the merged filesystem has them."""
    image = layout.load_image()
    files: dict[str, bytes] = {}
    for layer in image.layers:
        with gzip.open(layout.blob_path(layer.digest)) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                path = PurePosixPath(posixpath.normpath(member.name).lstrip("/"))
                if path.name == _OPAQUE_WHITEOUT:
                    _drop_under(files, str(path.parent))
                elif path.name.startswith(_WHITEOUT):
                    hidden = str(path.parent / path.name[len(_WHITEOUT) :])
                    files.pop(hidden, None)
                    _drop_under(files, hidden)
                elif member.isfile() and wanted.search(str(path)):
                    files[str(path)] = tar.extractfile(member).read()
                else:
                    files.pop(str(path), None)
    return files


def _drop_under(files: dict[str, bytes], directory: str) -> None:
    for path in [p for p in files if p.startswith(directory + "/")]:
        del files[path]


def inventory(layout: OciLayout) -> list[InventoryEntry]:
    files = image_files(layout, re.compile(rf"^{re.escape(DPKG_STATUS)}$|{_DIST_INFO_METADATA.pattern}"))
    entries = []
    if DPKG_STATUS in files:
        for paragraph in deb822.Deb822.iter_paragraphs(files[DPKG_STATUS].decode()):
            if paragraph.get("Status", "").endswith(" installed"):
                entries.append(InventoryEntry("deb", paragraph["Package"], paragraph["Version"], f"/{DPKG_STATUS}"))
    for path, content in files.items():
        if _DIST_INFO_METADATA.search(path):
            metadata = email.parser.BytesHeaderParser().parsebytes(content)
            entries.append(InventoryEntry("python", metadata["Name"], metadata["Version"], f"/{path}"))
    return sorted(entries)


def _add_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the Debian packages and Python distributions an image holds, with versions, from "
        "the records scanners read (dpkg status, dist-info)."
    )
    parser.add_argument("--layout", type=Path, required=True, help="the image's OCI layout directory")
    parser.add_argument("--out", type=Path, required=True, help="the inventory (JSON) to write")


def _inventory(args: argparse.Namespace) -> int:
    write_json(args.out, [asdict(entry) for entry in inventory(OciLayout(args.layout))])
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {"inventory": (_add_inventory_arguments, _inventory)}
