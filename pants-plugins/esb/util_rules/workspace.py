"""uv workspaces: a service may be a member of a workspace whose root (any directory above the
service's) holds a `pyproject.toml` with `[tool.uv.workspace]` and the one `uv.lock` of every
member, as uv finds it: the nearest directory above with that table.

Such a service is built from the workspace's lock, installing only what that member installs.
Its image takes, besides its own directory, exactly the root's `pyproject.toml` and `uv.lock` and
the directories of the members it depends on (transitively, as the lock records it), which are
built into wheels like local packages. The offline lock check covers the whole workspace, so it
also reads every member's `pyproject.toml`; none of those enters the image.

For `dependents` and `--changed-since`, a member depends on the targets that own the root's
`pyproject.toml` and `uv.lock` and the files of the members it installs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    Digest,
    DigestContents,
    DigestSubset,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.internals.graph import Owners, OwnersRequest
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import FieldSet, InferDependenciesRequest, InferredDependencies
from pants.engine.unions import UnionRule
from pants.util.strutil import softwrap

from esb.target_types import (
    SERVICE_BUILD_CONSTRAINTS_FILE,
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbServiceSourcesField,
)
from esb.toml_files import toml_table
from esb_contract.uv_lock import installed_local_directories

# The root's own files that a member's image may use; nothing else of the root enters.
ROOT_FILES = (SERVICE_PYPROJECT_FILE, SERVICE_LOCK_FILE, SERVICE_BUILD_CONSTRAINTS_FILE)


class WorkspaceError(Exception):
    """A service's place in a uv workspace cannot be built; names the file and the fix."""


def in_repo(root: str, path: str) -> str:
    """The repository path of `path`, relative to the workspace root `root`."""
    if path in ("", "."):
        return root
    return f"{root}/{path}" if root else path


def shown(root: str) -> str:
    return root or "the build root"


def ancestors(directory: str) -> tuple[str, ...]:
    """The directories above `directory` (a repository path), nearest first."""
    found = []
    while directory:
        directory = posixpath.dirname(directory)
        found.append(directory)
    return tuple(found)


def workspace_table(pyproject: dict) -> Optional[dict]:
    tool = pyproject.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    table = uv.get("workspace") if isinstance(uv, dict) else None
    return table if isinstance(table, dict) else None


def _globs(table: dict, key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    return tuple(g for g in value if isinstance(g, str)) if isinstance(value, list) else ()


def glob_matches(glob: str, path: str) -> bool:
    """Whether the member glob (relative to the root, as in `members`) matches the directory
    `path`: component by component, `**` for any number of components."""

    def match(parts: list[str], names: list[str]) -> bool:
        if not parts:
            return not names
        if parts[0] == "**":
            return any(match(parts[1:], names[i:]) for i in range(len(names) + 1))
        return (
            bool(names) and fnmatch.fnmatchcase(names[0], parts[0]) and match(parts[1:], names[1:])
        )

    return match(
        [p for p in posixpath.normpath(glob).split("/") if p not in ("", ".")],
        [p for p in path.split("/") if p],
    )


def is_member(directory: str, members: Iterable[str], exclude: Iterable[str]) -> bool:
    """As uv decides it: matched by a `members` glob and by no `exclude` glob."""
    return any(glob_matches(g, directory) for g in members) and not any(
        glob_matches(g, directory) for g in exclude
    )


def inside(directory: str, path: str) -> bool:
    return path == directory or path.startswith(f"{directory}/")


@dataclass(frozen=True)
class WorkspaceLayout:
    """Where a service sits with respect to the uv workspace above it, if any; read without
    failing, so that dependency inference never breaks on a workspace's mistakes."""

    address: Address
    root: Optional[str] = None
    """The workspace root's repository path ("" for the build root), or None outside one."""
    member: str = ""
    """The service's directory, relative to the root."""
    matched: bool = False
    """Whether the root's `members` match it and its `exclude` do not."""
    own_lock: bool = False
    members: tuple[str, ...] = ()
    """Every member's directory, relative to the root ("." for a root project)."""
    package: str = ""
    """The service's project name, as its `pyproject.toml` declares it."""
    has_lock: bool = False
    local_directories: tuple[str, ...] = ()
    """What the service installs from the workspace and from paths (root-relative)."""
    members_glob: tuple[str, ...] = ()
    exclude_glob: tuple[str, ...] = ()

    @property
    def is_member(self) -> bool:
        return self.root is not None and self.matched and not self.own_lock


@dataclass(frozen=True)
class WorkspaceLayoutRequest:
    address: Address


@rule
async def workspace_layout(request: WorkspaceLayoutRequest) -> WorkspaceLayout:
    directory = request.address.spec_path
    candidates = ancestors(directory)
    pyprojects, own_lock = await MultiGet(
        Get(DigestContents, PathGlobs([in_repo(d, SERVICE_PYPROJECT_FILE) for d in candidates])),
        Get(Snapshot, PathGlobs([in_repo(directory, SERVICE_LOCK_FILE)])),
    )
    contents = {c.path: c.content for c in pyprojects}
    root, table, root_pyproject = None, None, {}
    for candidate in candidates:
        root_pyproject = toml_table(contents.get(in_repo(candidate, SERVICE_PYPROJECT_FILE), b""))
        table = workspace_table(root_pyproject)
        if table is not None:
            root = candidate
            break
    if root is None or table is None:
        return WorkspaceLayout(request.address)
    member = posixpath.relpath(directory, root) if root else directory
    members_glob, exclude_glob = _globs(table, "members"), _globs(table, "exclude")
    layout = WorkspaceLayout(
        request.address,
        root,
        member,
        is_member(member, members_glob, exclude_glob),
        bool(own_lock.files),
        members_glob=members_glob,
        exclude_glob=exclude_glob,
    )
    if not layout.is_member:
        return layout
    found, lock_contents, own_pyproject = await MultiGet(
        Get(
            Snapshot,
            PathGlobs(
                [in_repo(root, f"{g.rstrip('/')}/{SERVICE_PYPROJECT_FILE}") for g in members_glob]
            ),
        ),
        Get(DigestContents, PathGlobs([in_repo(root, SERVICE_LOCK_FILE)])),
        Get(DigestContents, PathGlobs([in_repo(directory, SERVICE_PYPROJECT_FILE)])),
    )
    found_directories = (posixpath.dirname(path) for path in found.files)
    members = sorted(
        {
            relative
            for relative in (d[len(root) + 1 :] if root else d for d in found_directories)
            if is_member(relative, members_glob, exclude_glob)
        }
    )
    if isinstance(root_pyproject.get("project"), dict):
        members.insert(0, ".")
    project = toml_table(own_pyproject[0].content).get("project", {}) if own_pyproject else {}
    package = project.get("name", "") if isinstance(project, dict) else ""
    lock = toml_table(lock_contents[0].content) if lock_contents else {}
    return WorkspaceLayout(
        request.address,
        root,
        member,
        True,
        False,
        tuple(members),
        package if isinstance(package, str) else "",
        bool(lock_contents),
        installed_local_directories(lock, package) if package else (),
        members_glob,
        exclude_glob,
    )


@dataclass(frozen=True)
class WorkspaceMember:
    """A service that is a member of a uv workspace, and what its image takes from it."""

    address: Address
    root: str
    directory: str
    """The service's directory, relative to the root."""
    package: str
    local_packages: tuple[str, ...]
    """Root-relative directories of the members (and path sources inside the service) that it
    installs, built into wheels in the venv layer."""
    lock_digest: Digest
    """At root-relative paths: the root's `pyproject.toml` and `uv.lock`, every member's
    `pyproject.toml`, and the files of the service and of its local packages: what the lock
    check and `uv lock` read."""
    packages_digest: Digest
    """At root-relative paths: the files of `local_packages` only, so that the venv layer is
    keyed by them and not by the workspace's lock."""

    @property
    def lock_path(self) -> str:
        return in_repo(self.root, SERVICE_LOCK_FILE)

    @property
    def display_root(self) -> str:
        return self.root or "."


@dataclass(frozen=True)
class ServiceWorkspace:
    """The workspace membership of a service: `member` is None for a service with a lock of
    its own."""

    member: Optional[WorkspaceMember]


@dataclass(frozen=True)
class ServiceWorkspaceRequest:
    address: Address


def layout_error(layout: WorkspaceLayout) -> Optional[str]:
    """Why the service cannot be built as it sits in the workspace, with the fix; or None."""
    if layout.root is None:
        return None
    address, root = layout.address, layout.root
    directory = address.spec_path
    root_pyproject = in_repo(root, SERVICE_PYPROJECT_FILE)
    root_lock = in_repo(root, SERVICE_LOCK_FILE)
    relock = f"pants esb-lock {address}"
    if layout.matched and layout.own_lock:
        return softwrap(
            f"""
            The service {address} has its own {directory}/{SERVICE_LOCK_FILE}, but it is a
            member of the uv workspace rooted at {shown(root)} (the `members` of
            {root_pyproject} match {layout.member}), and uv uses the workspace's lock,
            {root_lock}, for every member: the service's own lock would be ignored.

            Fix: to build it with the workspace's lock, delete {directory}/{SERVICE_LOCK_FILE}
            and run `{relock}`; to keep a lock of its own, add "{layout.member}" to
            `exclude` in `[tool.uv.workspace]` of {root_pyproject}.
            """
        )
    if not layout.matched and not layout.own_lock:
        return softwrap(
            f"""
            The service {address} has no {SERVICE_LOCK_FILE} of its own and is inside the uv
            workspace rooted at {shown(root)}, but is not one of its members: the `members`
            {list(layout.members_glob)} (`exclude` {list(layout.exclude_glob)}) of
            {root_pyproject} do not match {layout.member}, so no lock covers it.

            Fix: add "{layout.member}" to `members` in `[tool.uv.workspace]` of
            {root_pyproject} and run `{relock}`; or give the service a lock of its own:
            add "{layout.member}" to `exclude` there and run `{relock}`.
            """
        )
    if layout.is_member and not layout.package:
        return softwrap(
            f"""
            {directory}/{SERVICE_PYPROJECT_FILE} declares no `[project]` `name`: as a member of
            the uv workspace rooted at {shown(root)}, the service is installed by its name.

            Fix: add `name = "..."` to its `[project]` table and run `{relock}`.
            """
        )
    for local in layout.local_directories:
        if local == "." or inside(local, layout.member) and local != layout.member:
            return softwrap(
                f"""
                The service {address} depends on the project at
                {shown(in_repo(root, local))} (in {root_lock}), which holds the service's own
                directory: its image may take only its own directory, {root_pyproject},
                {root_lock} and the members it depends on, not the rest of the workspace.

                Fix: move that project's code into a member directory of its own (e.g.
                `libs/<name>`, listed in `members`), depend on it there, and run `{relock}`.
                """
            )
        if local not in layout.members and not inside(layout.member, local):
            return softwrap(
                f"""
                The service {address} installs the local package {in_repo(root, local)} (in
                {root_lock}), which is neither a member of the uv workspace rooted at
                {shown(root)} nor inside {directory}/: its image may take only its own
                directory, {root_pyproject}, {root_lock} and the members it depends on.

                Fix: add "{local}" to `members` in `[tool.uv.workspace]` of {root_pyproject},
                depend on it with `{{ workspace = true }}` in `[tool.uv.sources]`, and run
                `{relock}`.
                """
            )
    return None


def _shipped(root: str, directory: str, files: Iterable[str]) -> list[str]:
    """The `files` of the root-relative `directory` that enter images: its junk left out."""
    # Imported here: the context rule imports this module for the paths it admits.
    from esb.util_rules.context import is_junk

    prefix = in_repo(root, directory)
    return [path for path in files if not is_junk(posixpath.relpath(path, prefix), ship_tests=True)]


@rule
async def service_workspace(request: ServiceWorkspaceRequest) -> ServiceWorkspace:
    layout = await Get(WorkspaceLayout, WorkspaceLayoutRequest(request.address))
    error = layout_error(layout)
    if error:
        raise WorkspaceError(error)
    if not layout.is_member or layout.root is None:
        return ServiceWorkspace(None)
    root = layout.root
    # Only what the venv builds: local packages inside the service are in its own directory.
    packages = tuple(d for d in layout.local_directories if d != layout.member)
    directories = (layout.member, *packages)
    lock_owners, root_files, member_pyprojects, *trees = await MultiGet(
        Get(Owners, OwnersRequest((in_repo(root, SERVICE_LOCK_FILE),))),
        Get(Snapshot, PathGlobs([in_repo(root, name) for name in ROOT_FILES])),
        Get(
            Snapshot,
            PathGlobs(
                [in_repo(root, f"{m}/{SERVICE_PYPROJECT_FILE}") for m in layout.members if m != "."]
            ),
        ),
        *(Get(Snapshot, PathGlobs([in_repo(root, f"{d}/**")])) for d in directories),
    )
    member = WorkspaceMember(
        request.address, root, layout.member, layout.package, packages, EMPTY_DIGEST, EMPTY_DIGEST
    )
    if not lock_owners:
        raise WorkspaceError(missing_owner_message(member))
    kept = [_shipped(root, d, tree.files) for d, tree in zip(directories, trees)]
    subsets = await MultiGet(
        Get(Digest, DigestSubset(tree.digest, PathGlobs(files))) for tree, files in zip(trees, kept)
    )
    lock_inputs, package_files = await MultiGet(
        Get(Digest, MergeDigests([root_files.digest, member_pyprojects.digest, *subsets])),
        Get(Digest, MergeDigests(subsets[1:])),
    )
    if root:
        lock_inputs, package_files = await MultiGet(
            Get(Digest, RemovePrefix(lock_inputs, root)),
            Get(Digest, RemovePrefix(package_files, root)),
        )
    return ServiceWorkspace(
        dataclasses.replace(
            member,
            lock_digest=lock_inputs,
            packages_digest=package_files if packages else EMPTY_DIGEST,
        )
    )


@dataclass(frozen=True)
class WorkspaceLockInputsRequest:
    """What `uv lock` of the workspace that `member` belongs to reads."""

    member: WorkspaceMember


@rule
async def workspace_lock_inputs(request: WorkspaceLockInputsRequest) -> Digest:
    """At root-relative paths: the root's files and those of every member, whatever the lock
    says (a first lock has nothing to say): uv builds the metadata of a member whose metadata
    is dynamic from its files, and the build constraints are found by building each."""
    member = request.member
    layout = await Get(WorkspaceLayout, WorkspaceLayoutRequest(member.address))
    directories = [d for d in layout.members if d != "."]
    trees = await MultiGet(
        Get(Snapshot, PathGlobs([in_repo(member.root, f"{d}/**")])) for d in directories
    )
    subsets = await MultiGet(
        Get(Digest, DigestSubset(tree.digest, PathGlobs(_shipped(member.root, d, tree.files))))
        for d, tree in zip(directories, trees)
    )
    files = await Get(Digest, MergeDigests(subsets))
    if member.root:
        files = await Get(Digest, RemovePrefix(files, member.root))
    return await Get(Digest, MergeDigests([member.lock_digest, files]))


@dataclass(frozen=True)
class WorkspaceDependencies:
    """The targets owning what a member's image takes from its workspace, and the files of
    the members it installs (repository paths), for the context rule."""

    addresses: tuple[Address, ...]
    member_files: tuple[str, ...]


@dataclass(frozen=True)
class WorkspaceDependenciesRequest:
    address: Address


@rule
async def workspace_dependencies(request: WorkspaceDependenciesRequest) -> WorkspaceDependencies:
    layout = await Get(WorkspaceLayout, WorkspaceLayoutRequest(request.address))
    if not layout.is_member or layout.root is None:
        return WorkspaceDependencies((), ())
    root = layout.root
    admitted = [
        d
        for d in layout.local_directories
        if d in layout.members and d not in (".", layout.member) and not inside(d, layout.member)
    ]
    trees = await MultiGet(Get(Snapshot, PathGlobs([in_repo(root, f"{d}/**")])) for d in admitted)
    files = tuple(
        sorted(path for d, tree in zip(admitted, trees) for path in _shipped(root, d, tree.files))
    )
    owners = await Get(
        Owners,
        OwnersRequest((*(in_repo(root, name) for name in ROOT_FILES), *files)),
    )
    addresses = tuple(sorted(a for a in owners if a.spec_path != request.address.spec_path))
    return WorkspaceDependencies(addresses, files)


@dataclass(frozen=True)
class WorkspaceMemberFieldSet(FieldSet):
    required_fields = (EsbServiceSourcesField,)

    sources: EsbServiceSourcesField


class InferWorkspaceDependencies(InferDependenciesRequest):
    infer_from = WorkspaceMemberFieldSet


@rule
async def infer_workspace_dependencies(
    request: InferWorkspaceDependencies,
) -> InferredDependencies:
    dependencies = await Get(
        WorkspaceDependencies, WorkspaceDependenciesRequest(request.field_set.address)
    )
    return InferredDependencies(dependencies.addresses)


def workspace_lock_groups(
    members: Mapping[Address, WorkspaceMember]
) -> dict[str, tuple[WorkspaceMember, ...]]:
    """The members given, by workspace root: each workspace is locked once."""
    groups: dict[str, list[WorkspaceMember]] = {}
    for address in sorted(members):
        groups.setdefault(members[address].root, []).append(members[address])
    return {root: tuple(group) for root, group in sorted(groups.items())}


def missing_owner_message(member: WorkspaceMember) -> str:
    return softwrap(
        f"""
        No target owns {member.lock_path}, the lock of the uv workspace that {member.address}
        is a member of: `dependents` and `--changed-since` would not see that a change to it
        reaches the image.

        Fix: add `files(name="uv-workspace", sources=["{SERVICE_PYPROJECT_FILE}",
        "{SERVICE_LOCK_FILE}"])` to {in_repo(member.root, "BUILD")}, then run
        `pants dependents {member.lock_path}` to check.
        """
    )


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferWorkspaceDependencies),
    ]
