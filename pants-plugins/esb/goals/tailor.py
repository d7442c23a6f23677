"""`pants tailor` adds an `esb_service_image` target to each new service: a directory with a
`pyproject.toml` and a `uv.lock` that no target owns yet."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from esb.target_types import (
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbBaseImageTarget,
    EsbImageRepositoryField,
    EsbServiceBaseField,
    EsbServiceCommandField,
    EsbServiceImageTarget,
    repository_component_for,
)
from pants.core.goals.tailor import (
    AllOwnedSources,
    PutativeTarget,
    PutativeTargets,
    PutativeTargetsRequest,
)
from pants.build_graph.address import BANNED_CHARS_IN_TARGET_NAME
from pants.engine.addresses import Address
from pants.engine.fs import PathGlobs, Paths
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllUnexpandedTargets
from pants.engine.unions import UnionRule
from pants.util.logging import LogLevel

logger = logging.getLogger(__name__)

_COMMAND_EXAMPLE = f'{EsbServiceCommandField.alias}=["python", "-m", "<module>"]'
# Without exactly one `src/<package>/__main__.py`, tailor cannot know how a service starts, and
# the target does not load until it is set.
_COMMAND_COMMENT = (
    f"# TODO: set `{EsbServiceCommandField.alias}` (required), e.g. {_COMMAND_EXAMPLE}."
)


@dataclass(frozen=True)
class PutativeEsbServiceImageTargetsRequest(PutativeTargetsRequest):
    pass


def _base_spec(address: Address) -> str:
    return f"//{address.spec_path}:{address.target_name}"


def _warn_no_single_base(service_dir: str, bases: list[Address]) -> None:
    if bases:
        listed = ", ".join(_base_spec(base) for base in bases)
        problem = f"there are several `{EsbBaseImageTarget.alias}` targets ({listed})"
    else:
        problem = f"there is no `{EsbBaseImageTarget.alias}` target"
    logger.warning(
        f"Not adding an `{EsbServiceImageTarget.alias}` target for the service in {service_dir}: "
        f"{problem}, so its required `{EsbServiceBaseField.alias}` field cannot be chosen.\n\n"
        f"Fix: add the target to {os.path.join(service_dir, 'BUILD')} by hand with "
        f"`{EsbServiceBaseField.alias}=` set, e.g. `{EsbServiceImageTarget.alias}("
        f'{EsbServiceBaseField.alias}="//<path>:<name>", {_COMMAND_EXAMPLE})`.'
    )


@rule(level=LogLevel.DEBUG, desc="Determine candidate esb_service_image targets to create")
async def find_putative_esb_service_images(
    request: PutativeEsbServiceImageTargetsRequest,
    all_owned_sources: AllOwnedSources,
    all_targets: AllUnexpandedTargets,
) -> PutativeTargets:
    locks, pyprojects = await MultiGet(
        Get(Paths, PathGlobs, request.path_globs(SERVICE_LOCK_FILE)),
        Get(Paths, PathGlobs, request.path_globs(SERVICE_PYPROJECT_FILE)),
    )
    project_dirs = {os.path.dirname(path) for path in pyprojects.files}
    service_dirs = sorted(
        os.path.dirname(lock)
        for lock in set(locks.files) - set(all_owned_sources)
        if os.path.dirname(lock) in project_dirs
    )
    if not service_dirs:
        return PutativeTargets()

    # Unexpanded targets suffice (a base is never generated), and tailor has already computed
    # them to find the owned sources.
    bases = sorted(tgt.address for tgt in all_targets if isinstance(tgt, EsbBaseImageTarget))
    if len(bases) != 1:
        # With several bases, any choice could install the service for the wrong Python.
        for service_dir in service_dirs:
            _warn_no_single_base(service_dir, bases)
        return PutativeTargets()

    names = {service_dir: _names(service_dir) for service_dir in service_dirs}
    for service_dir in [d for d, named in names.items() if named is None]:
        _warn_no_valid_name(service_dir)
    named_dirs = [d for d in service_dirs if names[d] is not None]
    if not named_dirs:
        return PutativeTargets()
    mains = await Get(Paths, PathGlobs([f"{d}/src/*/__main__.py" for d in named_dirs]))
    return PutativeTargets(
        _service_image(
            service_dir,
            names[service_dir],
            bases[0],
            [m for m in mains.files if m.startswith(f"{service_dir}/")],
        )
        for service_dir in named_dirs
    )


@dataclass(frozen=True)
class _Names:
    target: str
    repository: str | None
    """Set when the target's name is not a valid repository, its default."""


def _names(service_dir: str) -> _Names | None:
    """The directory's name as the target's, and the repository the OCI grammar makes of it
    when the name is not one; None when it makes none."""
    directory = os.path.basename(service_dir)
    repository = repository_component_for(directory)
    if repository is None:
        return None
    if repository == directory:
        return _Names(directory, None)
    if BANNED_CHARS_IN_TARGET_NAME.intersection(directory):
        return _Names(repository, None)
    return _Names(directory, repository)


def _warn_no_valid_name(service_dir: str) -> None:
    logger.warning(
        f"Not adding an `{EsbServiceImageTarget.alias}` target for the service in {service_dir}: "
        f"its directory's name {os.path.basename(service_dir)!r} has no ASCII letter or digit "
        f"to make the image's `{EsbImageRepositoryField.alias}` of (lower-case letters and "
        "digits, separated by '.', '_', '__' or '-').\n\n"
        f"Fix: rename the directory, or add the target to {os.path.join(service_dir, 'BUILD')} "
        f'by hand with `name=` and `{EsbImageRepositoryField.alias}=` set, e.g. '
        f'`{EsbServiceImageTarget.alias}(name="svc", {EsbImageRepositoryField.alias}="esb/svc", '
        f'{EsbServiceBaseField.alias}="//<path>:<name>", {_COMMAND_EXAMPLE})`.'
    )


def _service_image(
    service_dir: str, names: _Names, base: Address, mains: list[str]
) -> PutativeTarget:
    """The target, with the command when one package under `src/` has a `__main__` module."""
    kwargs: dict[str, object] = {EsbServiceBaseField.alias: _base_spec(base)}
    if names.repository is not None:
        kwargs[EsbImageRepositoryField.alias] = names.repository
    comments = [_COMMAND_COMMENT]
    if len(mains) == 1:
        package = os.path.basename(os.path.dirname(mains[0]))
        kwargs[EsbServiceCommandField.alias] = ("python", "-m", package)
        comments = []
    return PutativeTarget.for_target_type(
        EsbServiceImageTarget,
        path=service_dir,
        name=names.target,
        triggering_sources=[SERVICE_PYPROJECT_FILE, SERVICE_LOCK_FILE],
        kwargs=kwargs,
        comments=comments,
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(PutativeTargetsRequest, PutativeEsbServiceImageTargetsRequest),
    ]
