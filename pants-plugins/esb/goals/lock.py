"""`pants esb-lock`: (re)write the package lock of each `esb_base_image` target given."""

from __future__ import annotations

import json
from dataclasses import dataclass

from esb.subsystems.image_tool import ImageToolRequest
from esb.target_types import BASE_LOCK_FILE, EsbBasePackagesField
from pants.engine.console import Console
from pants.engine.fs import CreateDigest, Digest, FileContent, Workspace
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


@dataclass(frozen=True)
class _LockRun:
    lock_path: str
    process: Process


@goal_rule
async def esb_lock(targets: Targets, console: Console, workspace: Workspace) -> EsbLock:
    bases = [t for t in targets if t.has_field(EsbBasePackagesField)]
    if not bases:
        console.print_stderr(
            "No `esb_base_image` targets among the given addresses; try `pants esb-lock base:`."
        )
        return EsbLock(exit_code=1)
    requests = []
    for target in bases:
        request_json = json.dumps(
            {"packages": sorted(target[EsbBasePackagesField].value or ())}, sort_keys=True
        ).encode()
        inputs = await Get(Digest, CreateDigest([FileContent("request.json", request_json)]))
        requests.append(
            _LockRun(
                f"{target.address.spec_path}/{BASE_LOCK_FILE}",
                await Get(
                    Process,
                    ImageToolRequest(
                        argv=("debian-lock", "--request", "request.json", "--out", BASE_LOCK_FILE),
                        description=f"Lock the Debian packages of {target.address}",
                        input_digest=inputs,
                        output_files=(BASE_LOCK_FILE,),
                        needs_network_trust=True,
                        # The archive's indexes change with every point release.
                        cache_scope=ProcessCacheScope.PER_SESSION,
                    ),
                ),
            )
        )
    results = await MultiGet(Get(ProcessResult, Process, run.process) for run in requests)
    for run, result in zip(requests, results):
        workspace.write_digest(result.output_digest, path_prefix=run.lock_path.rsplit("/", 1)[0])
        console.print_stdout(f"Wrote {run.lock_path}")
    return EsbLock(exit_code=0)


def rules():
    return collect_rules()
