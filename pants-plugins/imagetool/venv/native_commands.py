"""Subcommands for the native-library check (see `imagetool.cli`): `base-libraries` lists the
shared libraries a base image holds, and `check-native` fails a venv whose ELF files need one
that neither the venv nor the base provides (`imagetool.venv.native`).

They have a module of their own so that no other step pays for importing pyelftools.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esb_contract import commands, flags
from esb_contract.architectures import ARCHITECTURES
from imagetool.commands import AddArguments, Run, read_json, write_json
from imagetool.oci import OciLayout
from imagetool.venv.native import (
    BaseLibraries,
    base_libraries,
    check_native_libraries,
    read_layer_members,
    read_venv_layers,
)


def add_base_libraries_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the shared libraries the dynamic linker finds in an image (its default and "
        "ld.so.conf directories), read from the layers of an OCI layout."
    )
    parser.add_argument(flags.LAYOUT, type=Path, required=True, help="The image's OCI layout.")
    parser.add_argument(flags.OUT, type=Path, required=True, help="Where to write the JSON list.")


def run_base_libraries(args: argparse.Namespace) -> int:
    image = OciLayout(args.layout).load_image()
    layers = [
        read_layer_members(image.layout.blob_path(descriptor.digest)) for descriptor in image.layers
    ]
    architecture = (
        image.config["architecture"] if image.config["architecture"] in ARCHITECTURES else ""
    )
    write_json(args.out, base_libraries(layers, architecture).to_json())
    return 0


def add_check_native_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fail unless every ELF file of a venv layer finds each of its DT_NEEDED libraries in "
        "its wheel, in the venv, or in the base image."
    )
    parser.add_argument(
        flags.VENV_BLOB,
        type=Path,
        action="append",
        dest="venv_blobs",
        required=True,
        help="A layer of /.venv (.tar.gz); repeatable, in the image's order.",
    )
    parser.add_argument(
        flags.BASE_LIBRARIES, type=Path, required=True, help="The base's `base-libraries` JSON."
    )
    parser.add_argument(flags.BASE, required=True, help="The base image's name, for messages.")
    parser.add_argument(
        flags.BASE_LOCK,
        type=Path,
        help="The base's packages.lock.json, to tell apart packages it already installs.",
    )


def run_check_native(args: argparse.Namespace) -> int:
    locked: list[str] = []
    if args.base_lock:
        locked = [package["name"] for package in read_json(args.base_lock).get("packages", [])]
    check_native_libraries(
        read_venv_layers(args.venv_blobs),
        BaseLibraries.from_json(read_json(args.base_libraries)),
        base_name=args.base,
        locked_packages=locked,
    )
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.BASE_LIBRARIES: (add_base_libraries_arguments, run_base_libraries),
    commands.CHECK_NATIVE: (add_check_native_arguments, run_check_native),
}
