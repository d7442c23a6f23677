"""The `merge-layers` command: layers written as one, holding what stacking them would leave.

Every layer of an image costs a node that pulls it requests, a download and an unpacking of its
own, whatever its size. A service's small layers (distributions of a few hundred kilobytes, the
venv's own files) cost it more that way than their bytes do; merged, they cost it once. The
build keeps each of them too, keyed by what it installs and shared by every service that locks
it: only the image lists the merged layer, and services with the same small layers share it.
"""

from __future__ import annotations

import argparse
import copy
import posixpath
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from esb_contract import commands, flags
from imagetool.commands import AddArguments, LayerOutputs, Run, add_layer_output_arguments
from imagetool.image_files import normalized_path, stacked_files
from imagetool.tarlayer import WHITEOUT, LayerError, LayerMember, read_layer_members


def merged_members(blobs: Sequence[Path]) -> list[LayerMember]:
    """The members of one layer that leaves what the layers at `blobs` (bottom first) leave
    stacked: where several hold a path, the upper one's entry; a hard link becomes a copy of
    its target as its own layer holds it, which a later layer may replace."""
    files = stacked_files((_members(blob) for blob in blobs), lambda _path: True)
    members = []
    for path, file in files.items():
        info, data = file.info, file.data
        if info.islnk():
            if data is None:
                raise LayerError(
                    f"{path!r} of a merged layer links to {info.linkname!r}, which its own "
                    "layer does not hold before it."
                )
            info = copy.copy(info)
            info.type, info.linkname = tarfile.REGTYPE, ""
        members.append((info, data))
    return members


def _members(blob: Path) -> Iterator[LayerMember]:
    try:
        with read_layer_members(blob) as members:
            for info, data in members:
                if posixpath.basename(normalized_path(info.name)).startswith(WHITEOUT):
                    # The merged layer would delete it from its own parts only, not from the
                    # layers below them.
                    raise LayerError(
                        f"The layer {blob} holds the whiteout {info.name!r}: a layer that "
                        "deletes files of the layers below cannot be merged; keep it apart."
                    )
                yield info, data
    except (OSError, EOFError, tarfile.TarError) as e:
        raise LayerError(f"Cannot read the layer {blob}: {e}.") from e


def _add_merge_layers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write layers as one layer that holds what stacking them leaves: where several hold a "
        "path, the upper one's entry. A layer with whiteouts is refused."
    )
    parser.add_argument(
        flags.LAYER,
        type=Path,
        action="append",
        required=True,
        help="a layer blob (.tar.gz) to merge; repeated, bottom layer first",
    )
    add_layer_output_arguments(parser)


def _merge_layers(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    outputs.write(merged_members(args.layer))
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.MERGE_LAYERS: (_add_merge_layers_arguments, _merge_layers),
}
