"""Command-line entry point of the image tool: one subcommand per build step.

The esb Pants backend runs each subcommand as a sandboxed process; every input is a file or an
argument, and every output a file, so the process is cacheable locally and remotely.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from imagetool import commands
from imagetool.debian import commands as debian_commands
from imagetool.venv import commands as venv_commands

COMMANDS = {**commands.COMMANDS, **debian_commands.COMMANDS, **venv_commands.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagetool", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _) in sorted(COMMANDS.items()):
        add_arguments(subparsers.add_parser(name))
    args = parser.parse_args(argv)
    _, run = COMMANDS[args.command]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
