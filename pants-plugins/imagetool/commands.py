"""What all the image tool's commands share, and the command `layer-from-dir` (`assemble` is
imagetool/assembly.py's).

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`;
a run raises `ToolError` for an input the user must fix, which `imagetool.cli` reports.
Every input is a file or an argument and every output a file, so a run is a cacheable process.
Time comes from `--mtime` or the spec's `created`, else `SOURCE_DATE_EPOCH`, else 0
(`source_date_epoch`): the library itself never reads the clock or the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from esb_contract import commands, flags
from esb_contract.source_date import SOURCE_DATE_EPOCH, parse_source_date_epoch
from imagetool.errors import ToolError
from imagetool.inventory import layer_inventory
from imagetool.spec import layer_descriptor_fields
from imagetool.tarlayer import (
    LayerBlob,
    LayerMember,
    members_from_directory,
    write_layer,
)

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


class CommandError(ToolError, ValueError):
    """An input file is missing or is not what the command needs."""


def source_date_epoch(explicit: int | None) -> int:
    """`explicit` if given, else `$SOURCE_DATE_EPOCH`, else 0: the time every output records."""
    if explicit is not None:
        return explicit
    value = os.environ.get(SOURCE_DATE_EPOCH, "0")
    seconds = parse_source_date_epoch(value)
    if seconds is None:
        raise CommandError(
            f"{SOURCE_DATE_EPOCH}={value!r} is not a number of seconds since the epoch."
        )
    return seconds


def add_layer_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of every command that writes a layer: see `LayerOutputs`."""
    parser.add_argument(
        flags.OUT_BLOB, type=Path, required=True, help="the layer blob (.tar.gz) to write"
    )
    parser.add_argument(
        flags.OUT_DESCRIPTOR, type=Path, required=True, help="the layer descriptor (JSON) to write"
    )
    parser.add_argument(
        flags.OUT_INVENTORY,
        type=Path,
        help="the layer's package records (JSON) to write, for `assemble`",
    )
    parser.add_argument(
        flags.MTIME,
        type=int,
        default=None,
        help=(
            "timestamp of every entry, in seconds since the epoch "
            "(default: $SOURCE_DATE_EPOCH, else 0)"
        ),
    )


@dataclass(frozen=True)
class LayerOutputs:
    """Where a command writes its layer blob, descriptor and package records, and the mtime of
    every entry. The records are taken from the members as they are written, so that no step
    ever reads a layer again to list an image's packages."""

    blob: Path
    descriptor: Path
    inventory: Path | None
    mtime: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LayerOutputs:
        """The outputs `add_layer_output_arguments` parsed.

        A command calls this before its work, so that a bad `SOURCE_DATE_EPOCH` fails it at once.
        """
        return cls(
            args.out_blob, args.out_descriptor, args.out_inventory, source_date_epoch(args.mtime)
        )

    def write(self, members: Iterable[LayerMember]) -> LayerBlob:
        members = list(members)
        blob = write_layer(members, self.blob, mtime=self.mtime)
        write_layer_descriptor(blob, self.descriptor)
        if self.inventory:
            write_json(self.inventory, layer_inventory(members).to_json())
        return blob


def write_layer_descriptor(blob: LayerBlob, path: Path) -> None:
    """Write the layer descriptor JSON file that `assemble` reads (see `imagetool.spec`)."""
    write_json(path, dataclasses.asdict(blob))


def read_layer_descriptor(path: Path) -> LayerBlob:
    return LayerBlob(**layer_descriptor_fields(read_json(path), where=str(path)))


def read_input(path: Path) -> bytes:
    """The contents of an input file, or a `CommandError` naming it."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise CommandError(f"Cannot read {path}: {e.strerror}.") from e


def read_json(path: Path) -> Any:
    data = read_input(path)
    try:
        return json.loads(data)
    except ValueError as e:
        raise CommandError(f"{path} is not valid JSON: {e}.") from e


def write_json(path: Path, value: Any) -> None:
    """Write `value` as the tool writes every JSON output: indented, keys sorted."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _add_layer_from_dir_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the files of a directory as a reproducible layer, owned by --uid:--gid."
    )
    parser.add_argument(
        flags.ROOT, type=Path, required=True, help="the directory whose contents form the layer"
    )
    parser.add_argument(
        flags.PREFIX,
        default="",
        help="where the contents go in the image, e.g. `app/` (default: /)",
    )
    parser.add_argument(flags.UID, type=int, default=0, help="owner of every entry (default: 0)")
    parser.add_argument(flags.GID, type=int, default=0, help="group of every entry (default: 0)")
    add_layer_output_arguments(parser)


def _layer_from_dir(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    if not args.root.is_dir():
        raise CommandError(f"--root {args.root} is not a directory.")
    outputs.write(members_from_directory(args.root, prefix=args.prefix, uid=args.uid, gid=args.gid))
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.LAYER_FROM_DIR: (_add_layer_from_dir_arguments, _layer_from_dir),
}
