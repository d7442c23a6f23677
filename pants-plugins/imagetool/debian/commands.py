"""The Debian base's commands: `debian-lock` (needs the network) and `debian-rootfs` (does not).

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from imagetool.commands import AddArguments, CommandError, Run, write_layer_descriptor
from imagetool.debian.archive import (
    ArchiveError,
    Source,
    fetch_https,
    gpgv_release_reader,
    read_suite,
    unverified_release_reader,
)
from imagetool.debian.bytecode import BytecodeError
from imagetool.debian.cacerts import CertificateError
from imagetool.debian.deb import DebError, deb_paths_in, read_deb
from imagetool.debian.lock import LockFormatError, PackageLock, ResolutionError, lock_packages
from imagetool.debian.rootfs import rootfs_members
from imagetool.debian.tree import TreeError
from imagetool.tarlayer import LayerError, write_layer

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_ERRORS = (
    ArchiveError,
    BytecodeError,
    CertificateError,
    CommandError,
    DebError,
    LayerError,
    LockFormatError,
    ResolutionError,
    TreeError,
)


def _add_lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Resolve Debian packages and their dependency closure against archive indexes, and "
        "write a lock of pinned .deb URLs with their sha256 and the base's platform facts."
    )
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="'URL SUITE COMPONENT...'",
        help="an archive suite, e.g. 'https://deb.debian.org/debian bookworm main' (repeatable)",
    )
    parser.add_argument("--package", action="append", required=True, help="a package to install (repeatable)")
    parser.add_argument("--architecture", default="amd64", help="Debian architecture (default: amd64)")
    parser.add_argument(
        "--keyring",
        type=Path,
        default=DEBIAN_KEYRING,
        help=f"OpenPGP keyring that signs the Release files (default: {DEBIAN_KEYRING})",
    )
    parser.add_argument(
        "--no-verify-release",
        action="store_true",
        help="do not check the Release files' signatures (then only TLS vouches for the indexes)",
    )
    parser.add_argument("--out-lock", type=Path, required=True, help="the lock file (JSON) to write")


def _lock(args: argparse.Namespace) -> int:
    read_release = unverified_release_reader if args.no_verify_release else gpgv_release_reader(args.keyring)
    suites = [
        read_suite(Source.parse(spec), args.architecture, fetch=fetch_https, read_release=read_release)
        for spec in args.source
    ]
    lock = lock_packages(suites, args.architecture, args.package)
    args.out_lock.write_text(lock.to_json(), encoding="utf-8")
    return 0


def _add_rootfs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Assemble the root filesystem of a package lock from its downloaded .deb files into one "
        "layer, without extracting anything: ownership and modes are the packages' own."
    )
    parser.add_argument("--lock", type=Path, required=True, help="the package lock (JSON)")
    parser.add_argument(
        "--debs",
        type=Path,
        required=True,
        help="directory holding each locked package under its pool file name (<name>_<version>_<arch>.deb)",
    )
    parser.add_argument(
        "--keep-documentation",
        action="store_true",
        help="keep /usr/share/{doc,man,info,lintian} (copyright files are always kept)",
    )
    parser.add_argument(
        "--keep-translations",
        action="store_true",
        help="keep the message catalogs in /usr/share/locale",
    )
    parser.add_argument(
        "--compile-bytecode",
        action="store_true",
        help="add bytecode for the base's Python modules (the tool must run on the base's Python minor version)",
    )
    parser.add_argument(
        "--mtime",
        type=int,
        default=None,
        help="timestamp of every entry, in seconds since the epoch (default: $SOURCE_DATE_EPOCH, else 0)",
    )
    parser.add_argument("--out-blob", type=Path, required=True, help="the layer blob (.tar.gz) to write")
    parser.add_argument(
        "--out-descriptor", type=Path, required=True, help="the layer descriptor (JSON) to write"
    )
    parser.add_argument(
        "--out-platform", type=Path, required=True, help="the base's platform facts (JSON) to write"
    )


def _rootfs(args: argparse.Namespace) -> int:
    try:
        lock = PackageLock.from_json(args.lock.read_text(encoding="utf-8"))
    except OSError as e:
        raise CommandError(f"Cannot read {args.lock}: {e.strerror}.") from e
    python_version = lock.platform.python_version
    if args.compile_bytecode and python_version is None:
        raise CommandError("--compile-bytecode was given, but the lock's packages hold no Python.")
    deb_paths = deb_paths_in(args.debs, lock)
    packages = [read_deb(package, deb_paths[package.name]) for package in lock.packages]
    members = rootfs_members(
        packages,
        keep_documentation=args.keep_documentation,
        keep_translations=args.keep_translations,
        bytecode_for_python=python_version if args.compile_bytecode else None,
    )
    blob = write_layer(members, args.out_blob, mtime=_mtime(args.mtime))
    write_layer_descriptor(blob, args.out_descriptor)
    args.out_platform.write_text(
        json.dumps(asdict(lock.platform), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return 0


def _mtime(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not value.isdigit():
        raise CommandError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since the epoch.")
    return int(value)


def _reporting_errors(name: str, run: Run) -> Run:
    """Input errors become one line on stderr and exit status 1, not a traceback."""

    def checked(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except _ERRORS as e:
            print(f"imagetool {name}: {e}", file=sys.stderr)
            return 1

    return checked


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    "debian-lock": (_add_lock_arguments, _reporting_errors("debian-lock", _lock)),
    "debian-rootfs": (_add_rootfs_arguments, _reporting_errors("debian-rootfs", _rootfs)),
}
