"""Command-line entry point of the image tool: one subcommand per build step.

The esb Pants backend runs each subcommand as a sandboxed process; every input is a file or an
argument, and every output a file, so the process is cacheable locally and remotely. An input the
user must fix (a `ToolError`) is reported as one line, `imagetool <subcommand>: <message>`, with
exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from imagetool import commands, engine, upstream
from imagetool.debian import commands as debian_commands
from imagetool.errors import ToolError
from imagetool.registry import commands as registry_commands
from imagetool.venv import commands as venv_commands

COMMANDS = {
    **commands.COMMANDS,
    **debian_commands.COMMANDS,
    **engine.COMMANDS,
    **registry_commands.COMMANDS,
    **upstream.COMMANDS,
    **venv_commands.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of `imagetool`, whose `--help` lists every subcommand with what it does."""
    parser = argparse.ArgumentParser(
        prog="imagetool",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name, (add_arguments, _) in sorted(COMMANDS.items()):
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
    args = build_parser().parse_args(argv)
    _, run = COMMANDS[args.subcommand]
    try:
        return run(args)
    except ToolError as e:
        print(f"imagetool {args.subcommand}: {e}", file=sys.stderr)
        return 1


def _summary(description: str | None) -> str:
    """The first sentence of a subcommand's description (on one line)."""
    text = " ".join((description or "").split())
    first, dot, _ = text.partition(". ")
    return first + ("." if dot else "")


if __name__ == "__main__":
    sys.exit(main())
