"""The commands that read an upstream base image (pulled by digest) without running it.

- `image-platform` writes the image's platform facts (imagetool/upstream_platform.py);
- `layer-inventories` lists each layer's package records for the image's inventory
  (imagetool/upstream_inventories.py);
- `accounts-layer` writes the layer that adds service accounts to the image
  (imagetool/upstream_accounts.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esb_contract import commands, flags
from imagetool.commands import (
    AddArguments,
    LayerOutputs,
    Run,
    add_layer_output_arguments,
    write_json,
)
from imagetool.debian.tree import ServiceAccount
from imagetool.image_files import load_single_image, read_image_files
from imagetool.upstream_accounts import account_files, accounts_members
from imagetool.upstream_inventories import write_layer_inventories
from imagetool.upstream_platform import bytecode_note, read_platform_facts


def _add_image_platform_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read an image's platform facts (architecture, Python version and interpreter, glibc "
        "version) from its config and layers, without running it."
    )
    parser.add_argument(
        flags.LAYOUT, type=Path, required=True, help="an OCI layout holding one image"
    )
    parser.add_argument(
        flags.NAME, required=True, help="the image's name, for messages (e.g. its reference)"
    )
    parser.add_argument(flags.OUT, type=Path, required=True, help="the facts (JSON) to write")


def _image_platform(args: argparse.Namespace) -> int:
    facts = read_platform_facts(load_single_image(args.layout), args.name)
    write_json(args.out, facts.to_json())
    print(
        f"{args.name}: {facts.architecture}, CPython {facts.python_version} at "
        f"{facts.interpreter}, glibc {facts.glibc_version}."
    )
    note = bytecode_note(args.name, facts)
    if note:
        print(note)
    return 0


def _add_accounts_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a layer that adds service accounts (`name:uid`, each with its own group) to the "
        "account files of an image."
    )
    parser.add_argument(
        flags.LAYOUT, type=Path, required=True, help="an OCI layout holding one image"
    )
    parser.add_argument(
        flags.NAME, required=True, help="the image's name, for messages (e.g. its reference)"
    )
    parser.add_argument(
        flags.ACCOUNT,
        action="append",
        required=True,
        help="a service account `name:uid` (repeatable)",
    )
    add_layer_output_arguments(parser)


def _accounts_layer(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    accounts = [ServiceAccount.parse(account) for account in args.account]
    files = read_image_files(load_single_image(args.layout), account_files)
    outputs.write(accounts_members(args.name, files, accounts))
    return 0


def _add_layer_inventories_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read the package records (dpkg status, dist-info) of each layer of an image, for "
        "`assemble`, into OUT_DIR/<index>/layer.inventory.json (index: 000 is the bottom "
        "layer)."
    )
    parser.add_argument(
        flags.LAYOUT, type=Path, required=True, help="an OCI layout holding one image"
    )
    parser.add_argument(
        flags.OUT_DIR, type=Path, required=True, help="the directory to write them to"
    )


def _layer_inventories(args: argparse.Namespace) -> int:
    write_layer_inventories(load_single_image(args.layout), args.out_dir)
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.IMAGE_PLATFORM: (_add_image_platform_arguments, _image_platform),
    commands.ACCOUNTS_LAYER: (_add_accounts_layer_arguments, _accounts_layer),
    commands.LAYER_INVENTORIES: (_add_layer_inventories_arguments, _layer_inventories),
}
