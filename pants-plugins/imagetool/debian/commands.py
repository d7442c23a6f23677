"""The Debian base's commands: `debian-lock` (needs the network), `debian-check-lock` (does
not) and `debian-rootfs` (downloads the locked packages its cache lacks).

`COMMANDS` maps each subcommand's name to `(add_arguments(parser), run(args) -> exit status)`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esb_contract import commands, flags
from esb_contract.architectures import ARCHITECTURES
from esb_contract.base_lock import PackageLocks
from imagetool.commands import (
    AddArguments,
    CommandError,
    LayerOutputs,
    Run,
    add_layer_output_arguments,
    read_input,
)
from imagetool.debian.archive import (
    Source,
    fetch_https,
    gpgv_release_reader,
    read_suite,
    unverified_release_reader,
)
from imagetool.debian.deb import read_deb
from imagetool.debian.fetch import LockOrigin, fetch_debs
from imagetool.debian.lock import lock_packages, read_lock
from imagetool.debian.rootfs import rootfs_members
from imagetool.debian.tree import ServiceAccount

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def _add_lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Resolve Debian packages and their dependency closure against archive indexes, and "
        "write a lock of pinned .deb URLs with their sha256 and the base's platform facts."
    )
    parser.add_argument(
        flags.SOURCE,
        action="append",
        required=True,
        metavar="'URL SUITE COMPONENT...'",
        help="an archive suite, e.g. 'https://deb.debian.org/debian bookworm main' (repeatable)",
    )
    parser.add_argument(
        flags.PACKAGE, action="append", required=True, help="a package to install (repeatable)"
    )
    parser.add_argument(
        flags.ARCHITECTURE,
        action="append",
        required=True,
        choices=sorted(ARCHITECTURES),
        help="a Debian architecture to lock the packages for (repeatable)",
    )
    parser.add_argument(
        flags.KEYRING,
        type=Path,
        default=DEBIAN_KEYRING,
        help=f"OpenPGP keyring that signs the Release files (default: {DEBIAN_KEYRING})",
    )
    parser.add_argument(
        flags.NO_VERIFY_RELEASE,
        action="store_true",
        help="do not check the Release files' signatures (then only TLS vouches for the indexes)",
    )
    parser.add_argument(
        flags.OUT_LOCK, type=Path, required=True, help="the lock file (JSON) to write"
    )


def _lock(args: argparse.Namespace) -> int:
    read_release = (
        unverified_release_reader if args.no_verify_release else gpgv_release_reader(args.keyring)
    )
    locks = []
    for architecture in sorted(set(args.architecture)):
        suites = [
            read_suite(
                Source.parse(spec), architecture, fetch=fetch_https, read_release=read_release
            )
            for spec in args.source
        ]
        locks.append(lock_packages(suites, architecture, args.package))
    args.out_lock.write_text(PackageLocks(tuple(locks)).to_json(), encoding="utf-8")
    return 0


def _add_check_lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check a package lock: that it is of this tool's format and closed under its packages' "
        "Depends and Pre-Depends (alternatives, Provides, versions, architecture qualifiers)."
    )
    parser.add_argument(flags.LOCK, type=Path, required=True, help="the package lock (JSON)")


def _check_lock(args: argparse.Namespace) -> int:
    read_lock(read_input(args.lock).decode("utf-8"))
    return 0


def _add_rootfs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Assemble the root filesystem of a package lock from its .deb files (downloaded into "
        "the cache when missing) into one layer, without extracting anything: ownership and "
        "modes are the packages' own."
    )
    parser.add_argument(flags.LOCK, type=Path, required=True, help="the package lock (JSON)")
    parser.add_argument(
        flags.ARCHITECTURE,
        required=True,
        choices=sorted(ARCHITECTURES),
        help="the architecture of the lock whose packages to assemble",
    )
    parser.add_argument(
        flags.DEBS,
        type=Path,
        required=True,
        help="a cache of .deb files by sha256 (<sha256>.deb): the locked packages it lacks are "
        "downloaded into it, each checked against the lock",
    )
    parser.add_argument(
        flags.LOCK_PATH,
        default="the package lock",
        help="the lock's path in the repository, for messages",
    )
    parser.add_argument(
        flags.LOCK_TARGET,
        default="the base",
        help="the target whose lock it is, for messages (`pants esb-lock <target>` locks anew)",
    )
    parser.add_argument(
        flags.KEEP_DOCUMENTATION,
        action="store_true",
        help="keep /usr/share/{doc,man,info,lintian} (copyright files are always kept)",
    )
    parser.add_argument(
        flags.KEEP_TRANSLATIONS,
        action="store_true",
        help="keep the message catalogs in /usr/share/locale",
    )
    parser.add_argument(
        flags.COMPILE_BYTECODE,
        action="store_true",
        help="add bytecode for the base's Python modules (the tool must run on the base's Python minor version)",
    )
    parser.add_argument(
        flags.ACCOUNT,
        action="append",
        default=[],
        metavar="NAME:UID",
        help="add an unprivileged account (and its group) for services to run as (repeatable)",
    )
    add_layer_output_arguments(parser)


def _rootfs(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    lock = read_lock(read_input(args.lock).decode("utf-8")).for_architecture(args.architecture)
    python_version = lock.platform.python_version
    if args.compile_bytecode and python_version is None:
        raise CommandError("--compile-bytecode was given, but the lock's packages hold no Python.")
    deb_paths = fetch_debs(lock, args.debs, LockOrigin(args.lock_path, args.lock_target))
    packages = [read_deb(package, deb_paths[package.name]) for package in lock.packages]
    members = rootfs_members(
        packages,
        keep_documentation=args.keep_documentation,
        keep_translations=args.keep_translations,
        bytecode_for_python=python_version if args.compile_bytecode else None,
        service_accounts=[ServiceAccount.parse(account) for account in args.account],
    )
    outputs.write(members)
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.DEBIAN_LOCK: (_add_lock_arguments, _lock),
    commands.DEBIAN_CHECK_LOCK: (_add_check_lock_arguments, _check_lock),
    commands.DEBIAN_ROOTFS: (_add_rootfs_arguments, _rootfs),
}
