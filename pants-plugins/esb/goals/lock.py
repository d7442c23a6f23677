"""`pants esb-lock`: (re)write the lock of each target given: the Debian package lock of an
`esb_base_image`, the `uv.lock` of an `esb_service_image`."""

from __future__ import annotations

import os
from typing import Iterable

from pants.base.build_root import BuildRoot
from pants.engine.console import Console
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    Digest,
    DigestContents,
    DigestSubset,
    PathGlobs,
    RemovePrefix,
    Snapshot,
    Workspace,
)
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.platform import Platform
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.option.option_types import BoolOption
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvSubsystem, UvWheel, UvWheelRequest
from esb.target_types import (
    BASE_LOCK_FILE,
    SERVICE_BUILD_CONSTRAINTS_FILE,
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbBaseDebianSourcesField,
    EsbBaseImageTarget,
    EsbBasePackagesField,
    EsbServiceBaseField,
)
from esb.util_rules.index_credentials import (
    CREDENTIALS_CACHES,
    IndexCredentials,
    IndexCredentialsRequest,
    credentials_argv,
    project_indexes,
)
from esb.util_rules.service import ServiceProject, ServiceProjectRequest
from esb.util_rules.workspace import (
    WorkspaceLockInputsRequest,
    WorkspaceMember,
    in_repo,
    workspace_lock_groups,
)
from esb_contract import commands, flags
from esb_contract.messages import tool_message


class EsbLockSubsystem(GoalSubsystem):
    name = "esb-lock"
    help = help_text(
        f"""
        Resolve the Debian packages of each given `esb_base_image` target, with their
        dependencies, against the Debian 12 archive, and write `{BASE_LOCK_FILE}` (exact
        versions, URLs and sha256) beside its BUILD file. Commit the result: builds only ever
        download what the lock pins.

        For each given `esb_service_image`, run `uv lock` (the uv of `[esb-uv]`, never one from
        `PATH`) on the service's `pyproject.toml` and write `{SERVICE_LOCK_FILE}` beside it.
        Versions the existing lock pins are kept unless `--upgrade` is given. When the service
        builds anything from source (a dependency locked with only an sdist, a local package,
        its own project with a `[build-system]`), also write `{SERVICE_BUILD_CONSTRAINTS_FILE}`:
        their build requirements, resolved and pinned with hashes (removed again when nothing
        is built). The lock must
        admit the Python of the service's base, read from the base's lock. Private indexes
        declared in `[[tool.uv.index]]` get their credentials from `UV_INDEX_<NAME>_USERNAME` /
        `UV_INDEX_<NAME>_PASSWORD` or netrc, and their CA from `[GLOBAL].ca_certs_path` (see
        docs/uv-locks.md). A service that is a member of a uv workspace is locked at the
        workspace's root, in its `{SERVICE_LOCK_FILE}` and `{SERVICE_BUILD_CONSTRAINTS_FILE}`
        (which covers what any member builds): once per workspace, however many of its members
        are given.
        """
    )

    upgrade = BoolOption(
        default=False,
        help="With service targets: let uv upgrade every locked package (`uv lock --upgrade`).",
    )


class EsbLock(Goal):
    subsystem_cls = EsbLockSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def debian_lock_argv(
    packages: Iterable[str], sources: Iterable[str], architectures: Iterable[str]
) -> tuple[str, ...]:
    return (
        commands.DEBIAN_LOCK,
        *(arg for architecture in architectures for arg in (flags.ARCHITECTURE, architecture)),
        *(arg for source in sources for arg in (flags.SOURCE, source)),
        *(arg for package in sorted(packages) for arg in (flags.PACKAGE, package)),
        flags.OUT_LOCK,
        BASE_LOCK_FILE,
    )


def uv_lock_argv(project: ServiceProject, upgrade: bool) -> tuple[str, ...]:
    return _uv_lock_argv(
        project,
        upgrade,
        display_dir=project.address.spec_path or ".",
        relock_command=project.relock_command,
        options=(),
    )


# What a lock process writes, under `project/`.
LOCK_OUTPUTS = (f"project/{SERVICE_LOCK_FILE}", f"project/{SERVICE_BUILD_CONSTRAINTS_FILE}")


def _uv_lock_argv(
    project: ServiceProject,
    upgrade: bool,
    *,
    display_dir: str,
    relock_command: str,
    options: tuple[str, ...],
) -> tuple[str, ...]:
    """The image tool's `uv-lock` of the uv project staged at `project/`."""
    return (
        commands.UV_LOCK,
        flags.PROJECT,
        "project",
        flags.PYTHON_VERSION,
        project.platform.python_version,
        flags.DISPLAY_DIR,
        display_dir,
        flags.RELOCK_COMMAND,
        relock_command,
        *((flags.UPGRADE,) if upgrade else ()),
        flags.BUILD_CONSTRAINTS,
        f"project/{SERVICE_BUILD_CONSTRAINTS_FILE}",
        *options,
        *credentials_argv(),
    )


def lock_request(
    argv: tuple[str, ...],
    description: str,
    inputs: Digest,
    env: FrozenDict[str, str],
    uv: UvWheel,
) -> ImageToolRequest:
    """The image tool's `uv-lock` of a service or workspace staged in `inputs`."""
    return ImageToolRequest(
        argv=argv,
        description=description,
        input_digest=inputs,
        output_files=LOCK_OUTPUTS,
        needs_network_trust=True,
        # The index changes at any time: a lock is resolved anew in each run.
        cache_scope=ProcessCacheScope.PER_SESSION,
        append_only_caches=CREDENTIALS_CACHES,
        extra_env=env,
        uv=uv,
    )


# Defined before the goal rule: Pants collects the rule's `Get`s from the helpers it has seen.
async def index_credentials(projects: Iterable[Digest]) -> None:
    """Check, and cache for the lock processes, the credentials of the private indexes that the
    `pyproject.toml` at the root of each of `projects` declares."""
    pyprojects = await MultiGet(
        Get(DigestContents, DigestSubset(digest, PathGlobs([SERVICE_PYPROJECT_FILE])))
        for digest in projects
    )
    indexes = {i for contents in pyprojects for c in contents for i in project_indexes(c.content)}
    if indexes:
        await Get(IndexCredentials, IndexCredentialsRequest(tuple(sorted(indexes, key=str))))


async def workspace_lock_processes(
    members: tuple[ServiceProject, ...],
    wheel: UvWheel,
    upgrade: bool,
    resolution_env: FrozenDict[str, str],
) -> list[tuple[str, Process]]:
    """Re-lock each uv workspace that a given service is a member of, once however many of its
    members are given: `uv lock` at the root, for every member, and the root's build
    constraints. The lock covers every base's Python its members' `requires-python` admit; the
    first member's names the one checked."""
    by_address = {p.address: p for p in members}
    groups = workspace_lock_groups({p.address: p.workspace for p in members if p.workspace})
    projects = [by_address[group[0].address] for group in groups.values()]
    await index_credentials(group[0].lock_digest for group in groups.values())
    roots = await MultiGet(
        Get(Digest, WorkspaceLockInputsRequest(group[0])) for group in groups.values()
    )
    staged = await MultiGet(Get(Digest, AddPrefix(root, "project")) for root in roots)
    processes = await MultiGet(
        Get(
            Process,
            lock_request(
                workspace_lock_argv(group, project, upgrade),
                f"Lock the Python dependencies of the uv workspace {root or '.'}",
                digest,
                resolution_env,
                wheel,
            ),
        )
        for (root, group), project, digest in zip(groups.items(), projects, staged)
    )
    return list(zip(groups, processes))


def lock_failures(
    processes: Iterable[Process], results: Iterable[FallibleProcessResult]
) -> list[str]:
    """What each failed lock process says, under its description."""
    return [
        f"{process.description} failed:\n\n"
        + tool_message(result.exit_code, result.stderr.decode(errors="replace"))
        for process, result in zip(processes, results)
        if result.exit_code != 0
    ]


@goal_rule
async def esb_lock(
    targets: Targets,
    console: Console,
    workspace: Workspace,
    subsystem: EsbLockSubsystem,
    uv: UvSubsystem,
    host: Platform,
    build_root: BuildRoot,
) -> EsbLock:
    # A base on an `upstream` image has no packages to lock.
    bases = [
        t
        for t in targets
        if isinstance(t, EsbBaseImageTarget) and t[EsbBasePackagesField].value is not None
    ]
    services = [t for t in targets if t.has_field(EsbServiceBaseField)]
    if not bases and not services:
        console.print_stderr(
            "No `esb_base_image` or `esb_service_image` targets among the given addresses; try "
            "`pants esb-lock base:` or `pants esb-lock services/api:api`."
        )
        return EsbLock(exit_code=1)
    base_processes = await MultiGet(
        Get(
            Process,
            ImageToolRequest(
                argv=debian_lock_argv(
                    target[EsbBasePackagesField].value or (),
                    target[EsbBaseDebianSourcesField].value or (),
                    target.architectures(),
                ),
                description=f"Lock the Debian packages of {target.address}",
                input_digest=EMPTY_DIGEST,
                output_files=(BASE_LOCK_FILE,),
                needs_network_trust=True,
                # The archive's indexes change with every point release.
                cache_scope=ProcessCacheScope.PER_SESSION,
            ),
        )
        for target in bases
    )
    projects = await MultiGet(
        Get(ServiceProject, ServiceProjectRequest(target.address)) for target in services
    )
    members = tuple(p for p in projects if p.workspace)
    projects = tuple(p for p in projects if not p.workspace)
    await index_credentials(p.digest for p in projects)
    wheel = await Get(UvWheel, UvWheelRequest(host.value))
    staged = await MultiGet(Get(Digest, AddPrefix(p.digest, "project")) for p in projects)
    service_processes = await MultiGet(
        Get(
            Process,
            lock_request(
                uv_lock_argv(project, subsystem.upgrade),
                f"Lock the Python dependencies of {project.address}",
                digest,
                uv.resolution_env(),
                wheel,
            ),
        )
        for project, digest in zip(projects, staged)
    )
    workspaces = await workspace_lock_processes(
        members, wheel, subsystem.upgrade, uv.resolution_env()
    )
    workspace_processes = tuple(process for _, process in workspaces)
    results = await MultiGet(
        Get(FallibleProcessResult, Process, process)
        for process in (*base_processes, *service_processes, *workspace_processes)
    )
    base_results = results[: len(bases)]
    service_results = results[len(bases) : len(bases) + len(projects)]
    workspace_results = results[len(bases) + len(projects) :]
    failures = lock_failures(
        (*base_processes, *service_processes, *workspace_processes),
        (*base_results, *service_results, *workspace_results),
    )
    if failures:
        for failure in failures:
            console.print_stderr(f"{failure}\n")
        console.print_stderr(
            "Nothing was written: every lock stays as it was until all of them can be written."
        )
        return EsbLock(exit_code=1)
    for target, result in zip(bases, base_results):
        workspace.write_digest(result.output_digest, path_prefix=target.address.spec_path)
        console.print_stdout(f"Wrote {os.path.join(target.address.spec_path, BASE_LOCK_FILE)}")
    outputs = await MultiGet(
        Get(Digest, RemovePrefix(result.output_digest, "project"))
        for result in (*service_results, *workspace_results)
    )
    directories = [p.address.spec_path for p in projects] + [root for root, _ in workspaces]
    written = list(zip(directories, outputs))
    snapshots = await MultiGet(Get(Snapshot, Digest, output) for _, output in written)
    for (directory, output), snapshot in zip(written, snapshots):
        workspace.write_digest(output, path_prefix=directory)
        console.print_stdout(f"Wrote {in_repo(directory, SERVICE_LOCK_FILE)}")
        constraints = in_repo(directory, SERVICE_BUILD_CONSTRAINTS_FILE)
        if SERVICE_BUILD_CONSTRAINTS_FILE in snapshot.files:
            console.print_stdout(f"Wrote {constraints}")
        elif os.path.isfile(os.path.join(build_root.path, constraints)):
            # Nothing is built from source any more: a stale file would only mislead.
            os.remove(os.path.join(build_root.path, constraints))
            console.print_stdout(f"Removed {constraints} (nothing is built from source)")
    return EsbLock(exit_code=0)


def workspace_lock_argv(
    group: tuple[WorkspaceMember, ...], project: ServiceProject, upgrade: bool
) -> tuple[str, ...]:
    return _uv_lock_argv(
        project,
        upgrade,
        display_dir=group[0].display_root,
        relock_command=f"pants esb-lock {' '.join(str(m.address) for m in group)}",
        options=(flags.WORKSPACE,),
    )


def rules():
    return collect_rules()
