"""`pants lint`, two linters over service images, each the very check `package` runs, so that
lint and package agree; only the build of a distribution locked as an sdist needs the index.

- `esb-uv-lock`: a service's `uv.lock` must be present, readable, up to date with its
  `pyproject.toml`, and admit its base image's Python (`imagetool export-lock`: `uv lock
  --check --offline` with the plugin's pinned uv), and its `build-constraints.txt` must pin the
  build requirements of what it builds from source; each distribution locked with only an sdist
  is built (the same cached process as `package`'s), so one that needs a compiler fails here.
  Each platform of the service's base is checked, so that a distribution without a wheel for
  one of them fails here as it would in `package`.
- `esb-context`: the context rule (see `esb.util_rules.context`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pants.core.goals.lint import LintResult, LintTargetsRequest
from pants.core.util_rules.partitions import PartitionerType
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel
from pants.util.strutil import help_text

from esb.target_types import EsbServiceBaseField, EsbServiceSourcesField
from esb.util_rules.base import BaseArchitectures
from esb.util_rules.context import ServiceContext, ServiceContextRequest
from esb.util_rules.sdists import SdistWheelRequest
from esb.util_rules.service import (
    LockExport,
    LockExportProcessRequest,
    ServiceArchitecturesRequest,
    ServiceProject,
    ServiceProjectRequest,
    sdist_wheel_requests,
    with_relock_command,
)


class EsbUvLockCheck(Subsystem):
    options_scope = "esb-uv-lock"
    name = "esb-uv-lock"
    help = help_text(
        """
        Checks, under `pants lint`, that each `esb_service_image`'s `uv.lock` exists, is a
        readable uv lockfile, matches its `pyproject.toml` (`uv lock --check --offline` with
        the uv of `[esb-uv]`), admits its base image's Python, and has no local path source
        outside the service's directory; that `build-constraints.txt` pins the build
        requirements of what the service builds from source (sdist-only distributions, local
        packages, its own project); and that each sdist-only distribution builds into a wheel
        (the same cached build as `package`'s: one that needs a C compiler fails). The fix for
        a stale lock or constraints file is `pants esb-lock <target>`.
        """
    )

    skip = SkipOption("lint")


@dataclass(frozen=True)
class ServiceImageFieldSet(FieldSet):
    required_fields = (EsbServiceBaseField, EsbServiceSourcesField)

    base: EsbServiceBaseField
    sources: EsbServiceSourcesField


class ServiceLockLintRequest(LintTargetsRequest):
    field_set_type = ServiceImageFieldSet
    tool_subsystem = EsbUvLockCheck
    partitioner_type = PartitionerType.DEFAULT_ONE_PARTITION_PER_INPUT


@dataclass(frozen=True)
class LockCheck:
    """The lock check of one platform of a service."""

    exit_code: int
    stdout: str
    stderr: str


async def check_lock(project: ServiceProject) -> LockCheck:
    process = await Get(Process, LockExportProcessRequest(project))
    result = await Get(FallibleProcessResult, Process, process)
    exit_code, stderr = result.exit_code, result.stderr.decode()
    if exit_code == 0:
        # The very builds `package` runs (and caches) for the distributions locked as sdists.
        export = await Get(LockExport, ServiceProject, project)
        requests = sdist_wheel_requests(project, export.distributions)
        processes = await MultiGet(Get(Process, SdistWheelRequest, r) for r in requests)
        builds = await MultiGet(Get(FallibleProcessResult, Process, p) for p in processes)
        failed = [build.stderr.decode().strip() for build in builds if build.exit_code != 0]
        if failed:
            exit_code = 1
            stderr = with_relock_command(
                project,
                "".join(
                    f"Building a distribution that {project.lock_path} pins from its sdist "
                    f"failed:\n\n{message}\n"
                    for message in failed
                ),
            )
    return LockCheck(exit_code, result.stdout.decode(), stderr)


@rule(desc="Check a service's uv.lock", level=LogLevel.DEBUG)
async def lint_service_lock(
    request: ServiceLockLintRequest.Batch[ServiceImageFieldSet, Any]
) -> LintResult:
    (field_set,) = request.elements
    platforms = await Get(BaseArchitectures, ServiceArchitecturesRequest(field_set.address))
    projects = await MultiGet(
        Get(ServiceProject, ServiceProjectRequest(field_set.address, architecture))
        for architecture in platforms.architectures
    )
    checks = [await check_lock(project) for project in projects]
    # A message every platform gives (a stale lock) once; one platform's own (a distribution
    # without a wheel for it) as that platform gave it.
    return LintResult(
        exit_code=max(check.exit_code for check in checks),
        stdout="".join(dict.fromkeys(check.stdout for check in checks)),
        stderr="".join(dict.fromkeys(check.stderr for check in checks)),
        linter_name=request.tool_name,
        partition_description=str(field_set.address),
    )


class EsbContextCheck(Subsystem):
    options_scope = "esb-context"
    name = "esb-context"
    help = help_text(
        """
        Checks, under `pants lint`, the context rule of each `esb_service_image`: its inputs
        are its own directory, its base and its lock's packages. A dependency on a target
        elsewhere, a symbolic link leaving the directory (followed as the system follows it),
        a loop of links, a selected file Pants would skip (a link to nothing, a name that is
        not UTF-8, a `.pyc` without its source), or a file that looks like a secret (unless
        `allowed_secrets` names it) fails, naming the path and the fix.
        """
    )

    skip = SkipOption("lint")


class ServiceContextLintRequest(LintTargetsRequest):
    field_set_type = ServiceImageFieldSet
    tool_subsystem = EsbContextCheck
    partitioner_type = PartitionerType.DEFAULT_ONE_PARTITION_PER_INPUT


@rule(desc="Check a service image's context", level=LogLevel.DEBUG)
async def lint_service_context(
    request: ServiceContextLintRequest.Batch[ServiceImageFieldSet, Any]
) -> LintResult:
    (field_set,) = request.elements
    context = await Get(ServiceContext, ServiceContextRequest(field_set.address))
    return LintResult(
        exit_code=1 if context.violations else 0,
        stdout="",
        stderr=context.message() + "\n" if context.violations else "",
        linter_name=request.tool_name,
        partition_description=str(field_set.address),
    )


def rules():
    return [*collect_rules(), *ServiceLockLintRequest.rules(), *ServiceContextLintRequest.rules()]
