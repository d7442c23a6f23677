"""A wheel built from a locked distribution's sdist: one sandboxed, cached image-tool process
(`sdist-wheel`) keyed by the locked requirement with its sha256, the sdist's URL, the service's
`build-constraints.txt` (the pinned build requirements) and the base's platform. Its wheel then
goes into the distribution's own layer; `lint` runs the same process, so that an sdist that does
not build fails `lint` as it fails `package`."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.fs import Digest, Snapshot
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, collect_rules, rule
from pants.util.frozendict import FrozenDict

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.target_types import SERVICE_BUILD_CONSTRAINTS_FILE
from esb.util_rules.index_credentials import CREDENTIALS_CACHES, credentials_argv
from esb.util_rules.layers import target_argv
from esb.util_rules.platform import BasePlatform
from esb_contract import commands, flags
from esb_contract.lock_export import LockedDistribution

SDIST_WHEEL_DIR = "wheel"
# How the process's description starts: a failure quoting it is the build of an sdist.
SDIST_WHEEL_DESCRIPTION = "Build a wheel of"


@dataclass(frozen=True)
class SdistWheelRequest:
    distribution: LockedDistribution
    """A distribution the lock pins with only an sdist (`sdist_url` set)."""
    platform: BasePlatform
    build_constraints: Digest
    """The service's `build-constraints.txt` at the digest's root."""


@dataclass(frozen=True)
class SdistWheel:
    """A digest holding the one wheel built, at `path`."""

    digest: Digest
    path: str


def sdist_wheel_argv(request: SdistWheelRequest) -> tuple[str, ...]:
    distribution = request.distribution
    return (
        commands.SDIST_WHEEL,
        flags.REQUIREMENT,
        distribution.requirement,
        flags.SDIST_URL,
        distribution.sdist_url,
        flags.BUILD_CONSTRAINTS,
        SERVICE_BUILD_CONSTRAINTS_FILE,
        # The base's platform is part of the key: the wheel is built for, and checked against, it.
        *target_argv(request.platform),
        *((flags.INDEX, distribution.index) if distribution.index else ()),
        *(credentials_argv() if distribution.index else ()),
        flags.OUT_DIR,
        SDIST_WHEEL_DIR,
    )


@rule
async def sdist_wheel_process(request: SdistWheelRequest, host: Platform) -> Process:
    wheel = await Get(UvWheel, UvWheelRequest(host.value))
    return await Get(
        Process,
        ImageToolRequest(
            argv=sdist_wheel_argv(request),
            description=f"{SDIST_WHEEL_DESCRIPTION} {request.distribution.pinned} from its sdist",
            input_digest=request.build_constraints,
            output_directories=(SDIST_WHEEL_DIR,),
            needs_network_trust=True,
            append_only_caches=CREDENTIALS_CACHES if request.distribution.index else FrozenDict(),
            uv=wheel,
        ),
    )


@rule
async def build_sdist_wheel(request: SdistWheelRequest) -> SdistWheel:
    process = await Get(Process, SdistWheelRequest, request)
    result = await Get(ProcessResult, Process, process)
    snapshot = await Get(Snapshot, Digest, result.output_digest)
    (path,) = snapshot.files
    return SdistWheel(result.output_digest, path)


def rules():
    return collect_rules()
