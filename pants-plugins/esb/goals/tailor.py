"""`pants tailor` adds an `esb_service_image` target to each new service: a directory with a
`pyproject.toml` and a `uv.lock` that no target owns yet.

The target runs as the base's first service account, and starts the service by its one console
script or its one `__main__` package when there is exactly one. Pants' own Python tailor adds
`python_sources`/`python_tests` targets for the service's code beside it; those need a source
root, so a service whose code has none is reported with the `pants.toml` line that gives it one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import PurePath
from typing import Iterable, Mapping, Optional

from pants.build_graph.address import BANNED_CHARS_IN_TARGET_NAME
from pants.core.goals.tailor import (
    AllOwnedSources,
    PutativeTarget,
    PutativeTargets,
    PutativeTargetsRequest,
)
from pants.engine.addresses import Address
from pants.engine.fs import DigestContents, PathGlobs, Paths
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import AllUnexpandedTargets, Target
from pants.engine.unions import UnionRule
from pants.source.source_root import OptionalSourceRoot, SourceRootRequest
from pants.util.logging import LogLevel

from esb.target_types import (
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbBaseImageTarget,
    EsbBaseServiceAccountsField,
    EsbImageRepositoryField,
    EsbImageUserField,
    EsbServiceBaseField,
    EsbServiceCommandField,
    EsbServiceImageTarget,
    EsbServiceSourcesField,
    repository_component_for,
)
from esb.toml_files import toml_table

logger = logging.getLogger(__name__)

_COMMAND_EXAMPLE = f'{EsbServiceCommandField.alias}=["python", "-m", "<module>"]'
# Without exactly one console script or `__main__` package, tailor cannot know how a service
# starts, and the target does not load until it is set.
_COMMAND_COMMENT = (
    f"# TODO: set `{EsbServiceCommandField.alias}` (required), e.g. {_COMMAND_EXAMPLE}, or "
    '["<console script>"].'
)
_NO_ACCOUNT_COMMENT = (
    f"# The base defines no `{EsbBaseServiceAccountsField.alias}`: the image runs as root. Add "
    f'one to the base, then set `{EsbImageUserField.alias}="<name>"`.'
)
# Directories of a service that hold no package to start: the `src/` layout's root, and tests.
_NOT_PACKAGES = frozenset({"src", "tests", "test"})
# The default `sources` entries that name the service's own files rather than its code, which a
# flat layout's `sources` keeps (those that exist).
_PROJECT_FILES = tuple(g for g in EsbServiceSourcesField.default or () if "/" not in g)


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


# Defined before the rule: Pants collects the rule's `Get`s from helpers it has seen.
async def _warn_code_without_source_root(
    service_dirs: list[str], python_files: Iterable[str]
) -> None:
    """Warn for each service whose Python files have no source root: the `python_sources` and
    `python_tests` targets Pants' own tailor adds for them would break every goal over `::`."""
    code_dirs = sorted({os.path.dirname(path) for path in python_files})
    roots = await MultiGet(
        Get(OptionalSourceRoot, SourceRootRequest(PurePath(directory))) for directory in code_dirs
    )
    rootless = {d for d, root in zip(code_dirs, roots) if root.source_root is None}
    for service_dir in service_dirs:
        missing = sorted(d for d in rootless if d == service_dir or d.startswith(f"{service_dir}/"))
        if missing:
            _warn_no_source_root(service_dir, missing)


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
    bases = sorted(
        (tgt for tgt in all_targets if isinstance(tgt, EsbBaseImageTarget)),
        key=lambda tgt: tgt.address,
    )
    if len(bases) != 1:
        # With several bases, any choice could install the service for the wrong Python.
        for service_dir in service_dirs:
            _warn_no_single_base(service_dir, [base.address for base in bases])
        return PutativeTargets()

    found = {service_dir: _names(service_dir) for service_dir in service_dirs}
    for service_dir in [d for d, named in found.items() if named is None]:
        _warn_no_valid_name(service_dir)
    names = {d: named for d, named in found.items() if named is not None}
    named_dirs = [d for d in service_dirs if d in names]
    if not named_dirs:
        return PutativeTargets()
    mains, python_files, project_files, pyproject_contents = await MultiGet(
        Get(
            Paths,
            PathGlobs(
                [f"{d}/src/*/__main__.py" for d in named_dirs]
                + [f"{d}/*/__main__.py" for d in named_dirs]
            ),
        ),
        Get(Paths, PathGlobs([f"{d}/**/*.py" for d in named_dirs])),
        Get(Paths, PathGlobs([f"{d}/{name}" for d in named_dirs for name in _PROJECT_FILES])),
        Get(DigestContents, PathGlobs([f"{d}/{SERVICE_PYPROJECT_FILE}" for d in named_dirs])),
    )
    await _warn_code_without_source_root(named_dirs, python_files.files)
    pyprojects_by_dir = {
        os.path.dirname(content.path): content.content for content in pyproject_contents
    }
    return PutativeTargets(
        _service_image(
            service_dir,
            names[service_dir],
            bases[0],
            _command(
                service_dir,
                pyprojects_by_dir.get(service_dir, b""),
                [m for m in mains.files if m.startswith(f"{service_dir}/")],
            ),
            _flat_sources(service_dir, python_files.files, project_files.files),
        )
        for service_dir in named_dirs
    )


def _flat_sources(
    service_dir: str, python_files: Iterable[str], project_files: Iterable[str]
) -> Optional[tuple[str, ...]]:
    """The `sources` of a flat layout, whose code the default (`src/**/*.py`) misses: the
    service's project files, each top-level directory holding Python code (with its data files)
    but tests, and the top-level modules. None for a `src/` layout or a service without code."""
    globs = set()
    for path in python_files:
        if not path.startswith(f"{service_dir}/"):
            continue
        top, nested, _ = path[len(service_dir) + 1 :].partition("/")
        if top == "src" and nested:
            return None
        if not nested:
            globs.add("*.py")
        elif top not in _NOT_PACKAGES:
            globs.add(f"{top}/**")
    if not globs:
        return None
    own = [f for f in project_files if os.path.dirname(f) == service_dir]
    existing = {os.path.basename(f) for f in own}
    return (*(name for name in _PROJECT_FILES if name in existing), *sorted(globs))


def _command(service_dir: str, pyproject: bytes, mains: Iterable[str]) -> Optional[tuple[str, ...]]:
    """How the service starts, when it has exactly one way: its one console script (installed
    only when its project has a `[build-system]`), else its one `__main__` package, under `src/`
    or at the service's top (flat layout)."""
    # Lock and package report a file that does not parse, naming it; tailor only cannot read
    # the command.
    project = toml_table(pyproject)
    table = project.get("project")
    scripts = table.get("scripts") if isinstance(table, Mapping) else None
    if "build-system" in project and isinstance(scripts, Mapping) and len(scripts) == 1:
        return (next(iter(scripts)),)
    packages = {
        os.path.basename(os.path.dirname(main))
        for main in mains
        if os.path.dirname(os.path.dirname(main)) in (f"{service_dir}/src", service_dir)
        and os.path.basename(os.path.dirname(main)) not in _NOT_PACKAGES
    }
    if len(packages) == 1:
        return ("python", "-m", packages.pop())
    return None


def _warn_no_source_root(service_dir: str, directories: list[str]) -> None:
    parent = os.path.dirname(service_dir)
    pattern = f"/{parent}/*" if parent else f"/{service_dir}"
    logger.warning(
        f"The Python code of the service in {service_dir} has no source root "
        f"({', '.join(directories)}), so the `python_sources`/`python_tests` targets that "
        "`pants tailor` adds for it make `pants test ::`, `pants dependents` and "
        "`--changed-since` fail with NoSourceRootError.\n\n"
        f'Fix: in pants.toml, add "{pattern}" to `[source].root_patterns` (every service '
        "directory a source root, so that both flat and `src/` layouts import as they do in "
        "the image)."
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
        f"by hand with `name=` and `{EsbImageRepositoryField.alias}=` set, e.g. "
        f'`{EsbServiceImageTarget.alias}(name="svc", {EsbImageRepositoryField.alias}="esb/svc", '
        f'{EsbServiceBaseField.alias}="//<path>:<name>", {_COMMAND_EXAMPLE})`.'
    )


def _service_image(
    service_dir: str,
    names: _Names,
    base: Target,
    command: Optional[tuple[str, ...]],
    sources: Optional[tuple[str, ...]],
) -> PutativeTarget:
    """The target on the base, running as the base's first service account."""
    kwargs: dict[str, str | int | bool | tuple[str, ...]] = {
        EsbServiceBaseField.alias: _base_spec(base.address)
    }
    if names.repository is not None:
        kwargs[EsbImageRepositoryField.alias] = names.repository
    if sources is not None:
        kwargs[EsbServiceSourcesField.alias] = sources
    comments = []
    accounts = base[EsbBaseServiceAccountsField].value or ()
    if accounts:
        kwargs[EsbImageUserField.alias] = accounts[0].split(":")[0]
    else:
        comments.append(_NO_ACCOUNT_COMMENT)
    if command is None:
        comments.append(_COMMAND_COMMENT)
    else:
        kwargs[EsbServiceCommandField.alias] = command
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
