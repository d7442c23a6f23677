"""Command-line entry point of the image tool: one subcommand per build step.

The esb Pants backend runs each subcommand as a sandboxed process; every input is a file or an
argument, and every output a file, so the process is cacheable locally and remotely. An input the
user must fix (a `ToolError`) is reported as its message alone, with exit status 1; anything else
is a bug, reported with its traceback and status 70 (`esb_contract.messages`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from esb_contract import commands
from esb_contract.image_spec import SpecError
from esb_contract.messages import TOOL_BUG, USER_ERROR

# Every command module imports `imagetool.commands`, so this costs no start-up time.
from imagetool.commands import AddArguments, Run
from imagetool.errors import ToolError

# The module that implements each subcommand (in its `COMMANDS`). `main` imports only that one:
# every build step is a run of this tool, and importing every module (the docker SDK, requests,
# python-debian, packaging) would cost each step several times a layer command's own imports.
COMMAND_MODULES = {
    commands.ACCOUNTS_LAYER: "imagetool.upstream",
    commands.ASSEMBLE: "imagetool.assembly",
    commands.BASE_LIBRARIES: "imagetool.venv.native_commands",
    commands.CHECK_NATIVE: "imagetool.venv.native_commands",
    commands.DEBIAN_CHECK_LOCK: "imagetool.debian.commands",
    commands.DEBIAN_LOCK: "imagetool.debian.commands",
    commands.DEBIAN_ROOTFS: "imagetool.debian.commands",
    commands.DISTRIBUTION_LAYER: "imagetool.venv.commands",
    commands.EXPORT_LOCK: "imagetool.venv.commands",
    commands.IMAGE_INDEX: "imagetool.index",
    commands.IMAGE_PLATFORM: "imagetool.upstream",
    commands.LAYER_FROM_DIR: "imagetool.commands",
    commands.LAYER_INVENTORIES: "imagetool.upstream",
    commands.MERGE_LAYERS: "imagetool.merge_layers",
    commands.PROJECT_LAYER: "imagetool.venv.commands",
    commands.PULL_IMAGE: "imagetool.registry.commands",
    commands.PUSH_IMAGE: "imagetool.registry.commands",
    commands.RUN_IMAGE: "imagetool.engine",
    commands.SDIST_WHEEL: "imagetool.venv.commands",
    commands.UV_LAYER: "imagetool.venv.commands",
    commands.UV_LOCK: "imagetool.venv.commands",
    commands.VENV_LAYER: "imagetool.venv.commands",
}


def command(name: str) -> tuple[AddArguments, Run]:
    """`(add_arguments(parser), run(args) -> exit status)` of the subcommand `name`."""
    return importlib.import_module(COMMAND_MODULES[name]).COMMANDS[name]


def build_parser(names: Sequence[str] = tuple(COMMAND_MODULES)) -> argparse.ArgumentParser:
    """The parser of `imagetool`, whose `--help` lists every subcommand with what it does."""
    parser = argparse.ArgumentParser(
        prog="imagetool",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name in sorted(names):
        add_arguments, _ = command(name)
        arguments = argparse.ArgumentParser(add_help=False)
        add_arguments(arguments)
        subparsers.add_parser(
            name,
            parents=[arguments],
            description=arguments.description,
            help=_summary(arguments.description),
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A known subcommand first: parse with its parser alone. Anything else (`--help`, a typo):
    # the full parser, which lists them all.
    names = argv[:1] if argv[:1] and argv[0] in COMMAND_MODULES else list(COMMAND_MODULES)
    args = build_parser(names).parse_args(argv)
    _, run = command(args.subcommand)
    _create_scratch_directory()
    try:
        return run(args)
    except (ToolError, SpecError) as e:
        print(e, file=sys.stderr)
        return USER_ERROR
    except Exception:
        # Told apart from a user error by its status: the backend reports it as a bug. Imported
        # here: only a bug needs it, and every build step is a run of this tool.
        import traceback

        traceback.print_exc()
        return TOOL_BUG


def _create_scratch_directory() -> None:
    """Create the directory that `TMPDIR` names when it is missing: the backend points it into
    the process's sandbox, which holds only the inputs, so that every scratch file, the tool's
    and uv's, goes with the sandbox rather than staying in the machine's /tmp."""
    directory = os.environ.get("TMPDIR")
    if directory:
        os.makedirs(directory, exist_ok=True)


def _summary(description: str | None) -> str:
    """The first sentence of a subcommand's description (on one line)."""
    text = " ".join((description or "").split())
    first, dot, _ = text.partition(". ")
    return first + ("." if dot else "")


if __name__ == "__main__":
    sys.exit(main())
