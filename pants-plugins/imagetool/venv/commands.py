"""Subcommands for the uv layer, a service's venv layers and its own project's layer, and for
its lock: checking and exporting it, locking, building an sdist's wheel (see `imagetool.cli`).

Each layer command writes its layer blob, a JSON descriptor of it, `{"digest", "diff_id",
"media_type", "size"}`, and its records, which list the distributions it installs (see
`imagetool.commands.LayerOutputs`). The commands are the only place that reads the
environment: `SOURCE_DATE_EPOCH` for the default mtime, and the variables that let uv reach the
index through the machine's TLS trust and proxies. Index credentials come from files in
`--credentials-dir` (see `imagetool.venv.indexes`), never from the arguments or environment,
which are part of the process's cache key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from esb_contract import commands, flags
from esb_contract.uv_lock import lock_local_directories, normalise_name
from esb_contract.uv_project import RELOCK_COMMAND
from imagetool.commands import (
    AddArguments,
    LayerOutputs,
    Run,
    add_layer_output_arguments,
    source_date_epoch,
    write_json,
)
from imagetool.venv.indexes import (
    PYPI_INDEX_URL,
    PackageIndex,
    VenvBuildError,
    credentials_netrc,
    project_indexes,
    read_toml,
)
from imagetool.venv.install import (
    DEFAULT_SOURCE_PATH,
    BuiltVenv,
    build_venv,
    install_distributions,
    venv_layer_members,
)
from imagetool.venv.relocation import site_packages_of, write_venv_files
from imagetool.venv.target_python import TargetPython
from imagetool.venv.uv_binary import read_uv_binary, uv_executable, uv_layer_members, uv_wheel
from imagetool.venv.uv_process import EXCLUDE_NEWER_ENV, Uv

if TYPE_CHECKING:
    from imagetool.venv.sdists import LockedSdist

# The modules that only some of these commands use (locking, checking and exporting a lock,
# building wheels, the service's own project) are imported in the functions that use them:
# every command is a process of its own, and `distribution-layer`, run once per distribution,
# needs none of them.

NETWORK_ENV_VARS = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
)
# What the backend sets to fix a resolution in time (`[esb-uv].exclude_newer`) for `uv lock`;
# a lock check uses the time the lock records instead (`check_lock`).
RESOLUTION_ENV_VARS = (EXCLUDE_NEWER_ENV,)


def add_uv_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write the layer that installs uv's binary as /usr/local/bin/uv."
    add_uv_arguments(parser, required=True, needed="")
    add_layer_output_arguments(parser)


def run_uv_layer(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    with tempfile.TemporaryDirectory(prefix="esb-uv-") as scratch:
        wheel = uv_wheel(args.uv, args.uv_cache, Path(scratch))
        outputs.write(uv_layer_members(read_uv_binary(wheel)))
    return 0


def add_export_lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fail unless a service's uv.lock matches its pyproject.toml and admits the base "
        "image's Python (offline), and write what it installs on the base: one hashed "
        "requirement per distribution, and the local packages."
    )
    _add_project_arguments(parser)
    _add_target_arguments(parser)
    parser.add_argument(
        flags.RELOCK_COMMAND,
        help=f"The command that re-locks the project, for messages (default: `{RELOCK_COMMAND}`).",
    )
    parser.add_argument(
        flags.EXTRA,
        action="append",
        dest="extras",
        default=[],
        help="An optional-dependency group of the project to install too; repeatable.",
    )
    parser.add_argument(
        flags.BUILD_CONSTRAINTS,
        type=Path,
        help="The service's build-constraints.txt (which need not exist): checked to pin the "
        "build requirements of what the service builds from source.",
    )
    parser.add_argument(
        flags.PACKAGE,
        help="With --project at a uv workspace's root: the member whose requirements to write.",
    )
    parser.add_argument(
        flags.OUT,
        type=Path,
        required=True,
        help='Where to write {"distributions": [{"name", "requirement", "index", "sdist_url"}], '
        '"local_directories"}.',
    )
    parser.add_argument(
        flags.CACHE_DIR,
        type=Path,
        help="uv's cache for the runs that need no index (the offline check, the export from "
        "the lock as it is), kept between runs (default: no cache): it saves uv's query of the "
        "interpreter. No run that reaches an index uses it, so it never holds an index's answers "
        "and cannot change the check's outcome.",
    )


def run_export_lock(args: argparse.Namespace) -> int:
    from imagetool.venv.build_constraints import build_sources, check_build_constraints
    from imagetool.venv.export import export_requirements
    from imagetool.venv.lock_checks import check_lock
    from imagetool.venv.project import backend_environment

    target = _target(args)
    relock = args.relock_command or RELOCK_COMMAND
    shown = args.display_dir or str(args.project)
    with tempfile.TemporaryDirectory(prefix="esb-lock-") as scratch:
        uv = uv_from(args.uv, args.uv_cache, Path(scratch))
        # The build backends come from the index, with no cache; the runs that need none share one.
        indexless = dataclasses.replace(uv, cache_dir=args.cache_dir)
        lock = check_lock(
            indexless,
            args.project,
            target.version,
            display_dir=args.display_dir,
            relock_command=relock,
            build_environment=lambda uv_output: backend_environment(
                uv_output,
                uv,
                args.project,
                local_package_directories(args.project),
                Path(scratch),
                display_dir=shown,
                relock_command=relock,
                build_constraints=(
                    args.build_constraints
                    if args.build_constraints and args.build_constraints.is_file()
                    else None
                ),
            ),
        )
        exported = export_requirements(
            indexless,
            args.project,
            args.extras,
            args.display_dir,
            relock_command=relock,
            package=args.package,
            lock=lock,
        )
        requirements = exported.for_target(target)
        if args.build_constraints is not None:
            # A workspace's file, at its root, serves every member: it covers what any builds.
            local = (
                local_package_directories(args.project)
                if args.package
                else exported.local_directories
            )
            check_build_constraints(
                args.build_constraints,
                build_sources(args.project, lock, local, display_dir=shown),
                shown_file=f"{shown}/{args.build_constraints.name}",
                relock_command=relock,
            )
    write_json(args.out, requirements.to_json())
    return 0


def add_distribution_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Install one locked distribution, without its dependencies, for the base image's "
        "Python and platform, and write its files under /.venv as a layer."
    )
    parser.add_argument(
        flags.REQUIREMENT,
        action="append",
        dest="requirements",
        default=[],
        help="A distribution's entry of export-lock: `name==version --hash=sha256:...`; "
        "repeatable.",
    )
    parser.add_argument(
        flags.WHEEL,
        action="append",
        dest="wheels",
        type=Path,
        default=[],
        help="A wheel built from a locked sdist (sdist-wheel), to install; repeatable.",
    )
    add_uv_arguments(parser, required=True, needed="")
    parser.add_argument(
        flags.INDEX,
        type=PackageIndex.from_argument,
        help="The named index the lock takes the distributions from, NAME=URL (from "
        "export-lock); default: --index-url.",
    )
    _add_target_arguments(parser)
    _add_install_arguments(parser)
    _add_credentials_argument(parser)
    add_layer_output_arguments(parser)


def run_distribution_layer(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    indexes = (args.index,) if args.index else ()
    if not args.requirements and not args.wheels:
        raise VenvBuildError("distribution-layer needs --requirement or --wheel.")
    with tempfile.TemporaryDirectory(prefix="esb-venv-") as scratch:
        installed = install_distributions(
            uv_from(
                args.uv,
                args.uv_cache,
                Path(scratch),
                credentials_netrc(args.credentials_dir, indexes),
                args.cache_dir,
            ),
            "".join(requirement.rstrip() + "\n" for requirement in args.requirements),
            Path(scratch) / "venv",
            _target(args),
            local_wheels=args.wheels,
            compile_bytecode=args.compile_bytecode,
            index_url=args.index.url if args.index else args.index_url,
            indexes=indexes,
        )
        outputs.write(venv_layer_members(installed))
    _report_bytecode(installed)
    return 0


def add_venv_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the layer that makes /.venv a venv of the base's Python: pyvenv.cfg, "
        "bin/python, the .pth file of the service's sources, and the service's local "
        "packages, built into wheels and installed. The distributions of the lock come in "
        "layers of their own (distribution-layer)."
    )
    _add_target_arguments(parser)
    parser.add_argument(
        flags.SOURCE_PATH,
        action="append",
        dest="source_paths",
        help=f"An in-image directory for sys.path; repeatable (default: {DEFAULT_SOURCE_PATH}).",
    )
    parser.add_argument(
        flags.PROJECT, type=Path, help="The service's directory, with its local packages."
    )
    parser.add_argument(
        flags.LOCAL_PACKAGE,
        action="append",
        dest="local_packages",
        default=[],
        help="A local package's directory, relative to --project (from export-lock); repeatable.",
    )
    add_uv_arguments(parser, required=False, needed=": needed for local packages")
    parser.add_argument(
        flags.DISPLAY_DIR, help="The project's directory as messages name it, e.g. services/api."
    )
    _add_build_constraints_argument(parser)
    _add_install_arguments(parser)
    add_layer_output_arguments(parser)


def run_venv_layer(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    target = _target(args)
    if args.local_packages and not (args.project and args.uv):
        raise VenvBuildError("--local-package needs --project and --uv.")
    source_paths = args.source_paths or [DEFAULT_SOURCE_PATH]
    with tempfile.TemporaryDirectory(prefix="esb-venv-") as scratch:
        venv_dir = Path(scratch) / "venv"
        if args.local_packages:
            from imagetool.venv.builds import build_local_wheels

            uv = uv_from(args.uv, args.uv_cache, Path(scratch), cache_dir=args.cache_dir)
            local_wheels = build_local_wheels(
                uv,
                args.project,
                args.local_packages,
                Path(scratch) / "wheels",
                source_date_epoch=outputs.mtime,
                display_dir=args.display_dir,
                index_url=args.index_url,
                build_constraints=args.build_constraints,
            )
            venv = build_venv(
                uv,
                "",
                venv_dir,
                target,
                local_wheels=local_wheels,
                source_paths=source_paths,
                compile_bytecode=args.compile_bytecode,
                index_url=args.index_url,
            )
        else:
            venv_dir.mkdir()
            write_venv_files(venv_dir, target, source_paths)
            venv = BuiltVenv(venv_dir, site_packages_of(venv_dir, target), ())
        outputs.write(venv_layer_members(venv))
    _report_bytecode(venv)
    return 0


def add_project_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the layer of the service's own project, when it is a package: built into a wheel "
        "and installed into /.venv without dependencies (console scripts, metadata, entry "
        "points, package data)."
    )
    _add_target_arguments(parser)
    parser.add_argument(
        flags.PROJECT,
        type=Path,
        required=True,
        help="The service's directory with what its build reads.",
    )
    add_uv_arguments(parser, required=True, needed="")
    parser.add_argument(
        flags.SERVICE, required=True, help="The service's target, for messages, e.g. services/x:x."
    )
    parser.add_argument(
        flags.DISPLAY_DIR, required=True, help="The service's directory, e.g. services/x."
    )
    _add_build_constraints_argument(parser)
    _add_install_arguments(parser)
    add_layer_output_arguments(parser)


def run_project_layer(args: argparse.Namespace) -> int:
    from imagetool.venv.project import (
        ServiceProject,
        build_project_wheel,
        install_project_wheel,
    )

    outputs = LayerOutputs.from_args(args)
    target = _target(args)
    with tempfile.TemporaryDirectory(prefix="esb-project-") as scratch:
        uv = uv_from(args.uv, args.uv_cache, Path(scratch), cache_dir=args.cache_dir)
        wheel = build_project_wheel(
            uv,
            args.project,
            Path(scratch) / "build",
            ServiceProject(args.service, args.display_dir),
            source_date_epoch=outputs.mtime,
            build_constraints=args.build_constraints,
            index_url=args.index_url,
        )
        installed = install_project_wheel(
            uv, wheel, Path(scratch) / "venv", target, compile_bytecode=args.compile_bytecode
        )
        outputs.write(venv_layer_members(installed))
    _report_bytecode(installed)
    return 0


def _add_build_constraints_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.BUILD_CONSTRAINTS,
        type=Path,
        help="The service's build constraints (pinned, hashed build requirements), if any.",
    )


def local_package_directories(project_dir: Path) -> list[str]:
    """The local packages of the project as `uv export` names them (path sources), read
    offline from the lock."""
    lock = project_dir / "uv.lock"
    content = read_toml(lock, str(lock), "re-lock") if lock.is_file() else {}
    return list(lock_local_directories(content))


def _report_bytecode(venv: BuiltVenv) -> None:
    if venv.bytecode_skipped:
        print(
            f"note: the venv ships without bytecode: {venv.bytecode_skipped}. Its modules are "
            "compiled in memory whenever a process imports them (see docs/upstream-bases.md).",
            file=sys.stderr,
        )
    for module in venv.uncompiled_modules:
        print(f"note: {module} does not compile, and ships without bytecode.", file=sys.stderr)


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    _add_python_version_argument(parser)
    parser.add_argument(
        flags.PYTHON_PLATFORM,
        required=True,
        help="The base's platform as uv names it, e.g. x86_64-manylinux_2_36 (Debian 12).",
    )
    parser.add_argument(
        flags.INTERPRETER,
        required=True,
        help="The base's interpreter, which /.venv/bin/python links to, e.g. /usr/bin/python3.11.",
    )


def _target(args: argparse.Namespace) -> TargetPython:
    return TargetPython(args.python_version, args.python_platform, args.interpreter)


def _add_install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.NO_BYTECODE,
        action="store_false",
        dest="compile_bytecode",
        help="Ship modules without .pyc files.",
    )
    parser.add_argument(
        flags.INDEX_URL, default=PYPI_INDEX_URL, help="The index uv downloads wheels from."
    )
    parser.add_argument(
        flags.CACHE_DIR, type=Path, help="uv's cache, kept between runs (default: no cache)."
    )


def _add_credentials_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.CREDENTIALS_DIR,
        type=Path,
        help="Where the backend wrote a netrc file per index, `<NAME>.netrc`, for the indexes "
        "that have credentials; outside the process's cache key.",
    )


def _add_project_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.PROJECT,
        type=Path,
        required=True,
        help="The service's directory, holding pyproject.toml and uv.lock.",
    )
    add_uv_arguments(parser, required=True, needed="")
    parser.add_argument(
        flags.DISPLAY_DIR, help="The project's directory as messages name it, e.g. services/api."
    )


def _add_python_version_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        flags.PYTHON_VERSION,
        required=True,
        help="The base image's Python version, X.Y.Z (e.g. 3.11.2).",
    )


def add_uv_arguments(parser: argparse.ArgumentParser, *, required: bool, needed: str) -> None:
    parser.add_argument(
        flags.UV,
        required=required,
        help=f"uv{needed}: its wheel as a pinned URL (URL#sha256=HEX&size=N), fetched into "
        f"{flags.UV_CACHE}; or a local path to its wheel or its binary.",
    )
    parser.add_argument(
        flags.UV_CACHE,
        type=Path,
        help="A directory kept between runs, where a pinned uv wheel and its binary are kept.",
    )


def uv_from(
    source: str,
    uv_cache: Optional[Path],
    scratch: Path,
    netrc: str = "",
    cache_dir: Optional[Path] = None,
) -> Uv:
    """The uv of `source` (see `add_uv_arguments`), with the machine's network settings and
    `netrc` as its only credentials: a netrc file of the build host's user is never read."""
    binary = uv_executable(source, uv_cache, scratch)
    network_env = {
        name: os.environ[name]
        for name in (*NETWORK_ENV_VARS, *RESOLUTION_ENV_VARS)
        if name in os.environ
    }
    netrc_file = scratch / "netrc"
    netrc_file.touch(mode=0o600)
    netrc_file.write_text(netrc)
    network_env["NETRC"] = str(netrc_file.absolute())
    return Uv(binary, cache_dir, network_env)


def add_lock_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "(Re)write a service's uv.lock with uv lock (needs the index), keeping the versions an "
        "existing lock pins, and check that it admits the base image's Python."
    )
    _add_project_arguments(parser)
    _add_python_version_argument(parser)
    parser.add_argument(
        flags.UPGRADE, action="store_true", help="Let uv upgrade every locked package."
    )
    parser.add_argument(
        flags.WORKSPACE,
        action="store_true",
        help="--project is a uv workspace's root: lock every member in its uv.lock.",
    )
    parser.add_argument(
        flags.INDEX_URL, default=PYPI_INDEX_URL, help="The index uv resolves against."
    )
    parser.add_argument(
        flags.RELOCK_COMMAND,
        help="The command that re-locks the project, for messages and the constraints' header.",
    )
    parser.add_argument(
        flags.BUILD_CONSTRAINTS,
        type=Path,
        help="Where to write the build requirements (hashed) of what the service builds from "
        "source: its sdist-only distributions, local packages, and own project with a "
        "[build-system]. Nothing is written when it builds nothing. An existing file's pins "
        "are kept unless --upgrade.",
    )
    _add_credentials_argument(parser)


def run_lock(args: argparse.Namespace) -> int:
    from imagetool.venv.build_constraints import build_sources, write_build_constraints
    from imagetool.venv.export import export_requirements
    from imagetool.venv.lock_checks import recorded_exclude_newer
    from imagetool.venv.locking import lock_project
    from imagetool.venv.workspace import lock_workspace

    pyproject = args.project / "pyproject.toml"
    shown = f"{args.display_dir or args.project}/pyproject.toml"
    indexes = (
        project_indexes(read_toml(pyproject, shown, "lock the project again"), shown)
        if pyproject.is_file()
        else ()
    )
    relock = args.relock_command or RELOCK_COMMAND
    netrc = credentials_netrc(args.credentials_dir, indexes)
    with tempfile.TemporaryDirectory(prefix="esb-lock-") as scratch:
        uv = uv_from(args.uv, args.uv_cache, Path(scratch), netrc)
        lock = (lock_workspace if args.workspace else lock_project)(
            uv,
            args.project,
            args.python_version,
            display_dir=args.display_dir,
            upgrade=args.upgrade,
            index_url=args.index_url,
            relock_command=relock,
        )
        if args.build_constraints is not None:
            shown = args.display_dir or str(args.project)
            local = (
                local_package_directories(args.project)
                if args.workspace
                else export_requirements(uv, args.project, (), shown, relock).local_directories
            )
            written = write_build_constraints(
                uv,
                args.project,
                build_sources(args.project, lock, local, display_dir=shown),
                args.build_constraints,
                relock_command=relock,
                source_date_epoch=source_date_epoch(None),
                index_url=args.index_url,
                netrc_text=netrc,
                exclude_newer=recorded_exclude_newer(lock),
                upgrade=args.upgrade,
            )
            if not written:
                args.build_constraints.unlink(missing_ok=True)
    return 0


def add_sdist_wheel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build a locked distribution's sdist into a wheel. The sdist is downloaded and checked "
        "against the lock's sha256; the build requirements are those pinned in "
        "--build-constraints, SOURCE_DATE_EPOCH is fixed and no compiler is on PATH."
    )
    parser.add_argument(
        flags.REQUIREMENT,
        required=True,
        help="The distribution's entry of export-lock: `name==version --hash=sha256:...`.",
    )
    parser.add_argument(
        flags.SDIST_URL, required=True, help="The sdist's URL, as the lock records it."
    )
    # The base's platform keys the build (a wheel is built for it); the build itself runs on
    # the image tool's interpreter, of the base's minor version, and makes only pure wheels.
    _add_target_arguments(parser)
    add_uv_arguments(parser, required=True, needed="")
    parser.add_argument(
        flags.BUILD_CONSTRAINTS,
        type=Path,
        required=True,
        help="The service's build-constraints.txt, from `pants esb-lock`.",
    )
    parser.add_argument(
        flags.INDEX,
        type=PackageIndex.from_argument,
        help="The named index the lock takes the distribution from, NAME=URL (its credentials "
        "apply to the download).",
    )
    parser.add_argument(
        flags.INDEX_URL, default=PYPI_INDEX_URL, help="The index of the build requirements."
    )
    parser.add_argument(
        flags.CACHE_DIR, type=Path, help="uv's cache, kept between runs (default: no cache)."
    )
    _add_credentials_argument(parser)
    parser.add_argument(
        flags.OUT_DIR, type=Path, required=True, help="Where to write the one wheel built."
    )


def run_sdist_wheel(args: argparse.Namespace) -> int:
    from imagetool.venv.builds import build_wheel
    from imagetool.venv.sdists import fetch_sdist

    sdist = locked_sdist(args.requirement, args.sdist_url)
    _target(args)
    indexes = (args.index,) if args.index else ()
    epoch = source_date_epoch(None)
    with tempfile.TemporaryDirectory(prefix="esb-sdist-") as scratch:
        netrc = credentials_netrc(args.credentials_dir, indexes)
        uv = uv_from(args.uv, args.uv_cache, Path(scratch), netrc, args.cache_dir)
        downloaded = Path(scratch) / "sdist"
        downloaded.mkdir()
        wheel = build_wheel(
            uv,
            fetch_sdist(sdist, downloaded, netrc),
            Path(scratch) / "wheel",
            source_date_epoch=epoch,
            build_constraints=args.build_constraints,
            display=sdist.display,
            index_url=args.index_url,
        )
        # Only the wheel: uv also writes a .gitignore into its output directory.
        args.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, args.out_dir / wheel.name)
    return 0


def locked_sdist(requirement: str, url: str) -> LockedSdist:
    """The sdist of an export-lock entry, whose one hash is the sdist's."""
    first = requirement.splitlines()[0].rstrip(" \\").split(";", 1)[0].strip()
    name, _, version = first.partition("==")
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", requirement)
    if not version or len(hashes) != 1:
        raise VenvBuildError(
            f"{requirement.strip()!r} is not a pinned requirement with the one hash of an sdist."
        )
    from imagetool.venv.sdists import LockedSdist

    return LockedSdist(normalise_name(name), version.strip(), url, hashes[0])


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    commands.UV_LOCK: (add_lock_arguments, run_lock),
    commands.UV_LAYER: (add_uv_layer_arguments, run_uv_layer),
    commands.EXPORT_LOCK: (add_export_lock_arguments, run_export_lock),
    commands.DISTRIBUTION_LAYER: (add_distribution_layer_arguments, run_distribution_layer),
    commands.SDIST_WHEEL: (add_sdist_wheel_arguments, run_sdist_wheel),
    commands.VENV_LAYER: (add_venv_layer_arguments, run_venv_layer),
    commands.PROJECT_LAYER: (add_project_layer_arguments, run_project_layer),
}
