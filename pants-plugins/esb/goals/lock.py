"""`pants esb-lock`: (re)write the package lock of each `esb_base_image` target given."""

from __future__ import annotations

import os
from typing import Iterable

from esb.subsystems.image_tool import ImageToolRequest
from esb.target_types import BASE_LOCK_FILE, EsbBaseDebianSourcesField, EsbBasePackagesField
from pants.engine.console import Console
from pants.engine.fs import EMPTY_DIGEST, Workspace
from pants.engine.goal import Goal, GoalSubsystem
from pants.engine.process import Process, ProcessCacheScope, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, goal_rule
from pants.engine.target import Targets
from pants.util.strutil import help_text


class EsbLockSubsystem(GoalSubsystem):
    name = "esb-lock"
    help = help_text(
        f"""
        Resolve the Debian packages of each given `esb_base_image` target, with their
        dependencies, against the Debian 12 archive, and write `{BASE_LOCK_FILE}` (exact
        versions, URLs and sha256) beside its BUILD file. Commit the result: builds only ever
        download what the lock pins.
        """
    )


class EsbLock(Goal):
    subsystem_cls = EsbLockSubsystem
    environment_behavior = Goal.EnvironmentBehavior.LOCAL_ONLY


def debian_lock_argv(packages: Iterable[str], sources: Iterable[str]) -> tuple[str, ...]:
    return (
        "debian-lock",
        *(arg for source in sources for arg in ("--source", source)),
        *(arg for package in sorted(packages) for arg in ("--package", package)),
        "--out-lock",
        BASE_LOCK_FILE,
    )


@goal_rule
async def esb_lock(targets: Targets, console: Console, workspace: Workspace) -> EsbLock:
    bases = [t for t in targets if t.has_field(EsbBasePackagesField)]
    if not bases:
        console.print_stderr(
            "No `esb_base_image` targets among the given addresses; try `pants esb-lock base:`."
        )
        return EsbLock(exit_code=1)
    processes = await MultiGet(
        Get(
            Process,
            ImageToolRequest(
                argv=debian_lock_argv(
                    target[EsbBasePackagesField].value or (),
                    target[EsbBaseDebianSourcesField].value or (),
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
    results = await MultiGet(Get(ProcessResult, Process, process) for process in processes)
    for target, result in zip(bases, results):
        workspace.write_digest(result.output_digest, path_prefix=target.address.spec_path)
        console.print_stdout(f"Wrote {os.path.join(target.address.spec_path, BASE_LOCK_FILE)}")
    return EsbLock(exit_code=0)


def rules():
    return collect_rules()
