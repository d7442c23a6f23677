"""An image's creation time: the epoch, or the committer time of the commit checked out.

The commit's time is read once per run, and only when an image's `created` field asks for it: the
spec of every other image carries no `created`, so that its assembly's cache key stays the same
from commit to commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pants.base.build_root import BuildRoot
from pants.core.util_rules.system_binaries import MaybeGitBinary
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.process import FallibleProcessResult, Process, ProcessCacheScope
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import Target
from pants.util.logging import LogLevel

from esb.target_types import CREATED_COMMIT, CREATED_EPOCH, EsbImageCreatedField
from esb_contract.source_date import SOURCE_DATE_EPOCH, parse_source_date_epoch


class ImageCreatedError(Exception):
    pass


@dataclass(frozen=True)
class CommitTimeRequest:
    pass


@dataclass(frozen=True)
class CommitTime:
    """The time `created="commit"` stands for, in seconds since the epoch, or why there is none
    and how to give one."""

    seconds: Optional[int] = None
    problem: str = ""
    fix: str = ""


def commit_time_from_git(
    exit_code: int, stdout: bytes, stderr: bytes, build_root: str
) -> CommitTime:
    """What `git log -1 --format=%ct HEAD` run at `build_root` says."""
    output = stdout.decode(errors="replace").strip()
    if exit_code == 0 and output.isdigit():
        return CommitTime(int(output))
    said = stderr.decode(errors="replace").strip() or output or f"exit status {exit_code}"
    return CommitTime(
        problem=f"git finds no commit checked out at {build_root} ({said})",
        fix="build in a git checkout with a commit (`git commit`)",
    )


@rule(desc="Read the time of the commit checked out", level=LogLevel.DEBUG)
async def commit_time(
    _: CommitTimeRequest, build_root: BuildRoot, git: MaybeGitBinary
) -> CommitTime:
    environment = await Get(EnvironmentVars, EnvironmentVarsRequest([SOURCE_DATE_EPOCH]))
    source_date = environment.get(SOURCE_DATE_EPOCH)
    if source_date is not None:
        seconds = parse_source_date_epoch(source_date)
        if seconds is not None:
            return CommitTime(seconds)
        return CommitTime(
            problem=f"{SOURCE_DATE_EPOCH}={source_date!r}, which wins over the commit's time, is "
            "not a number of seconds since the epoch",
            fix=f"set {SOURCE_DATE_EPOCH} to one (e.g. `$(git log -1 --format=%ct)`), or unset it",
        )
    if git.git_binary is None:
        return CommitTime(
            problem="there is no `git` on the PATH to read it with",
            fix=f"install git, or set {SOURCE_DATE_EPOCH} to the time to record",
        )
    result = await Get(
        FallibleProcessResult,
        Process(
            (git.git_binary.path, "-C", build_root.path, "log", "-1", "--format=%ct", "HEAD"),
            description="Read the committer time of HEAD",
            # The commit checked out changes between runs, invisibly to the engine.
            cache_scope=ProcessCacheScope.PER_SESSION,
            level=LogLevel.DEBUG,
        ),
    )
    return commit_time_from_git(result.exit_code, result.stdout, result.stderr, build_root.path)


async def image_created(target: Target) -> Optional[int]:
    """The `created` of the target's image spec: None (the epoch, as the image tool records it
    when the spec has none) unless its `created` field asks for the commit's time."""
    field = target[EsbImageCreatedField]
    if not field.from_commit:
        return None
    time = await Get(CommitTime, CommitTimeRequest())
    if time.seconds is None:
        raise ImageCreatedError(
            f'The `{field.alias}` field of the target {target.address} is "{CREATED_COMMIT}", '
            f"the time of the commit checked out, but {time.problem}.\n\nFix: {time.fix}; or set "
            f'`{field.alias}="{CREATED_EPOCH}"`.'
        )
    return time.seconds


def rules():
    return collect_rules()
