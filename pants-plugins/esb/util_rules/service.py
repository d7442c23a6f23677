"""A service image: its base, then uv, then the venv from its `uv.lock`, then its own project when
it is a package, then its own files (the app layer, which the assembly writes)."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Iterable, Optional

from pants.engine.addresses import Address
from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    MergeDigests,
    PathGlobs,
    RemovePrefix,
    Snapshot,
)
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessExecutionFailure, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    InvalidFieldException,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.option.global_options import GlobalOptions
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import RegistriesSubsystem
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.target_types import (
    BASE_LOCK_FILE,
    SERVICE_BUILD_CONSTRAINTS_FILE,
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbImageEnvironmentField,
    EsbImageRepositoryField,
    EsbImageStopSignalField,
    EsbImageTagsField,
    EsbImageUserField,
    EsbServiceBaseField,
    EsbServiceCommandField,
    EsbServiceExtrasField,
    EsbServicePortsField,
    EsbServiceSourcesField,
    EsbServiceVolumesField,
    EsbServiceWorkdirField,
    image_labels,
)
from esb.toml_files import toml_table
from esb.util_rules import context, index_credentials, sdists
from esb.util_rules.base import (
    BaseArchitectures,
    BaseArchitecturesRequest,
    BaseImageRequest,
    BaseSources,
    BuiltBaseImage,
)
from esb.util_rules.context import ServiceContext, ServiceContextRequest
from esb.util_rules.created import image_created
from esb.util_rules.dependencies import ResolvedBaseAddress
from esb.util_rules.image import (
    IMAGE_LAYOUT,
    AppLayerFiles,
    BuiltImage,
    ImageAssemblyRequest,
    config_json,
)
from esb.util_rules.index_credentials import (
    IndexCredentials,
    IndexCredentialsRequest,
    PackageIndex,
)
from esb.util_rules.layers import (
    BaseLibraries,
    BaseLibrariesRequest,
    BuiltLayer,
    DistributionLayerRequest,
    MergedLayerRequest,
    NativeCheck,
    NativeCheckRequest,
    ProjectLayerRequest,
    UvLayerRequest,
    VenvLayerRequest,
    layer_blob_entry,
    target_argv,
)
from esb.util_rules.platform import BasePlatform, platform_suffix
from esb.util_rules.sdists import SDIST_WHEEL_DESCRIPTION, SdistWheel, SdistWheelRequest
from esb.util_rules.workspace import (
    ServiceWorkspace,
    ServiceWorkspaceRequest,
    WorkspaceMember,
    in_repo,
)
from esb_contract import commands, flags, steps
from esb_contract.image_spec import APP_PATH, ConfigChanges
from esb_contract.limits import MAX_DISTRIBUTION_LAYERS, layers_to_merge
from esb_contract.lock_export import LockedDistribution, LockExport
from esb_contract.messages import tool_message
from esb_contract.uv_lock import (
    leaves_project,
    lock_local_directories,
    may_build_local_packages,
    normalise_name,
)
from esb_contract.uv_project import RELOCK_PLACEHOLDER, is_package, pyproject_path_sources

APP_SOURCE_PATH = f"{APP_PATH}/src"


@dataclass(frozen=True)
class ServiceImageRequest:
    address: Address
    architecture: str = ""
    """The platform to build, by architecture; "" for the base's first."""


def check_service_files(address: Address, files: tuple[str, ...]) -> None:
    """The uv project must sit at the top of the service's own directory."""
    root = address.spec_path
    missing = [
        name
        for name in EsbServiceSourcesField.required_files
        if (f"{root}/{name}" if root else name) not in files
    ]
    if missing:
        raise InvalidFieldException(
            f"The `{EsbServiceSourcesField.alias}` field of the target {address} selects no "
            f"{' and no '.join(missing)} in {root or 'the build root'}/.\n\nFix: each service "
            f"directory holds its uv project: create `{SERVICE_PYPROJECT_FILE}`, run "
            f"`pants esb-lock {address}`, and keep both files in "
            f"`{EsbServiceSourcesField.alias}`."
        )


@dataclass(frozen=True)
class ServiceProjectRequest:
    address: Address
    architecture: str = ""
    """The base platform the project is built for; "" for the base's first."""


@dataclass(frozen=True)
class ServiceProject:
    """A service's uv project: `pyproject.toml` and `uv.lock` (those that exist) and the files of
    its local packages at the root of `digest` (and, when it is a package, all the files it
    ships, from which uv builds its metadata), and the platform of its base, for which it is
    locked and installed."""

    address: Address
    digest: Digest
    platform: BasePlatform
    base_address: Address
    local_packages: tuple[str, ...] = ()
    """The directories, relative to the service's, of the path and editable sources its lock
    names; their files belong to the venv, not to the app layer."""
    workspace: Optional[WorkspaceMember] = None
    """When the service is a member of a uv workspace: it is locked there (esb/util_rules/
    workspace.py), and `local_packages` is empty."""
    is_package: bool = False
    """Whether its own project is built and installed (`esb_contract.uv_project.is_package`)."""
    extras: tuple[str, ...] = ()
    """The optional-dependency groups of its project that it installs too."""
    build_constraints: Digest = EMPTY_DIGEST
    """The `build-constraints.txt` its builds use, at the digest's root: the service's own or,
    for a workspace member, the workspace root's; empty when it has none."""

    @property
    def has_build_constraints(self) -> bool:
        return self.build_constraints != EMPTY_DIGEST

    @property
    def builds_wheels(self) -> bool:
        """Whether checking or installing the lock runs a build backend, fetched from the index."""
        return self.is_package or bool(self.local_packages)

    @property
    def lock_path(self) -> str:
        if self.workspace:
            return self.workspace.lock_path
        return in_service(self.address, SERVICE_LOCK_FILE)

    @property
    def relock_command(self) -> str:
        return f"pants esb-lock {self.address}"


def in_service(address: Address, path: str) -> str:
    """The repository path of `path`, relative to the service's directory."""
    return in_repo(address.spec_path, path)


def project_globs(address: Address, local_packages: tuple[str, ...]) -> tuple[str, ...]:
    """The service's files (repository paths) that make its uv project."""
    names = (
        *EsbServiceSourcesField.required_files,
        SERVICE_BUILD_CONSTRAINTS_FILE,
        *(f"{d}/**" for d in local_packages),
    )
    return tuple(in_service(address, name) for name in names)


def source_path(app_files: tuple[str, ...]) -> str:
    """The directory the venv's `.pth` file puts on `sys.path`: `/app/src` for a `src/` layout,
    else `/app` (a flat layout: `app/main.py` imports as `app.main`). `app_files` are relative
    to the service's directory."""
    return APP_SOURCE_PATH if any(f.startswith("src/") for f in app_files) else APP_PATH


def local_package_directories(pyproject: dict, lock: bytes) -> tuple[str, ...]:
    """The directories inside the project that its path and editable sources name: in
    `[tool.uv.sources]` of `pyproject.toml` (its table; what `uv lock` reads) and in `uv.lock`
    (what the venv installs).

    A file that does not parse names none: the lock check reports it with its fix. Sources
    outside the project are the lock check's to refuse.
    """
    paths = (
        *(path for _, path in pyproject_path_sources(pyproject)),
        *(lock_local_directories(toml_table(lock)) if may_build_local_packages(lock) else ()),
    )
    inside = {posixpath.normpath(p) for p in paths if not leaves_project(p)}
    return tuple(sorted(inside - {"."}))


def check_extras(address: Address, extras: tuple[str, ...], pyproject: dict) -> None:
    """Fail unless the service's `pyproject.toml` (its table) defines every extra the target
    asks for."""
    project = pyproject.get("project")
    table = project.get("optional-dependencies") if isinstance(project, dict) else None
    defined = {normalise_name(n): n for n in (table if isinstance(table, dict) else {})}
    missing = [e for e in extras if normalise_name(e) not in defined]
    if missing:
        path = in_service(address, SERVICE_PYPROJECT_FILE)
        listed = ", ".join(f"`{n}`" for n in sorted(defined.values())) or "none"
        raise InvalidFieldException(
            f"The `{EsbServiceExtrasField.alias}` field of the target {address} names "
            f"{', '.join(map(repr, missing))}, which {path} does not define in "
            f"`[project.optional-dependencies]` (it defines {listed}).\n\nFix: remove "
            f"{'it' if len(missing) == 1 else 'them'} from `{EsbServiceExtrasField.alias}`, or "
            f"add the group to {path} and run `pants esb-lock {address}`."
        )


def check_local_packages(
    address: Address, files: tuple[str, ...], directories: tuple[str, ...]
) -> None:
    root = address.spec_path
    empty = [d for d in directories if not any(f.startswith(f"{root}/{d}/") for f in files)]
    if empty:
        listed = ", ".join(f"`{root}/{d}`" for d in empty)
        globs = ", ".join(f'"{d}/**"' for d in empty)
        raise InvalidFieldException(
            f"The uv project in {root}/ uses the local package(s) {listed}, but the "
            f"`{EsbServiceSourcesField.alias}` field of the target {address} selects none of "
            f"their files, so the venv could not build them.\n\nFix: add {globs} to "
            f"`{EsbServiceSourcesField.alias}`, e.g. `{EsbServiceSourcesField.alias}=["
            f"{', '.join(repr(g) for g in EsbServiceSourcesField.default)}, {globs}]`."
        )


@dataclass(frozen=True)
class ServiceArchitecturesRequest:
    address: Address


@rule
async def service_architectures(request: ServiceArchitecturesRequest) -> BaseArchitectures:
    """A service is built for each platform of its base."""
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    base = await Get(ResolvedBaseAddress, EsbServiceBaseField, wrapped.target[EsbServiceBaseField])
    return await Get(BaseArchitectures, BaseArchitecturesRequest(base.address))


@rule
async def read_service_project(request: ServiceProjectRequest) -> ServiceProject:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    root = request.address.spec_path
    # Pants' capture of the sources crashes on a loop of links: the context rule names it first.
    service_context = await Get(ServiceContext, ServiceContextRequest(request.address))
    if not service_context.captured:
        raise ContextRuleViolation(service_context.message())
    base_address, sources = await MultiGet(
        Get(ResolvedBaseAddress, EsbServiceBaseField, target[EsbServiceBaseField]),
        Get(HydratedSources, HydrateSourcesRequest(target[EsbServiceSourcesField])),
    )
    project_files = await Get(
        DigestContents,
        DigestSubset(sources.snapshot.digest, PathGlobs(project_globs(request.address, ()))),
    )
    contents = {file.path: file.content for file in project_files}
    pyproject = toml_table(contents.get(in_service(request.address, SERVICE_PYPROJECT_FILE), b""))
    local_packages = local_package_directories(
        pyproject, contents.get(in_service(request.address, SERVICE_LOCK_FILE), b"")
    )
    check_local_packages(request.address, sources.snapshot.files, local_packages)
    extras = target[EsbServiceExtrasField].value or ()
    check_extras(request.address, extras, pyproject)
    package = is_package(pyproject)
    globs = project_globs(request.address, local_packages)
    if package:
        # uv builds the metadata of a project that is a package from its sources to lock it.
        globs = (*globs, *service_context.shipped_files)
    project, platform = await MultiGet(
        Get(Digest, DigestSubset(sources.snapshot.digest, PathGlobs(globs))),
        Get(
            BasePlatform,
            BaseImageRequest,
            BaseImageRequest(base_address.address, request.architecture),
        ),
    )
    project = await Get(Digest, RemovePrefix(project, root)) if root else project
    member = (await Get(ServiceWorkspace, ServiceWorkspaceRequest(request.address))).member
    constraints = await Get(
        Digest,
        DigestSubset(
            member.lock_digest if member else project,
            PathGlobs([SERVICE_BUILD_CONSTRAINTS_FILE]),
        ),
    )
    return ServiceProject(
        request.address,
        project,
        platform,
        base_address.address,
        local_packages,
        workspace=member,
        is_package=package,
        extras=extras,
        build_constraints=constraints,
    )


LOCK_EXPORT = "lock-export.json"
# The lock check's uv cache (`export-lock --cache-dir`): a Pants named cache, kept between runs
# and outside every key.
LOCK_CHECK_CACHE_NAME = "esb_uv_offline"
LOCK_CHECK_CACHE_PATH = ".cache/esb-uv-offline"


def export_lock_argv(project: ServiceProject) -> tuple[str, ...]:
    member = project.workspace
    return (
        commands.EXPORT_LOCK,
        flags.PROJECT,
        "project",
        *target_argv(project.platform),
        flags.DISPLAY_DIR,
        member.display_root if member else project.address.spec_path or ".",
        *((flags.PACKAGE, member.package) if member else ()),
        flags.RELOCK_COMMAND,
        project.relock_command,
        *(arg for extra in project.extras for arg in (flags.EXTRA, extra)),
        # A workspace's file is at its root, staged at `project/` like a service's own project.
        flags.BUILD_CONSTRAINTS,
        f"project/{SERVICE_BUILD_CONSTRAINTS_FILE}",
        flags.OUT,
        LOCK_EXPORT,
        flags.CACHE_DIR,
        LOCK_CHECK_CACHE_PATH,
    )


@dataclass(frozen=True)
class LockExportProcessRequest:
    project: ServiceProject


@rule
async def lock_export_process(request: LockExportProcessRequest, host: Platform) -> Process:
    """`uv lock --check --offline` and the checks around it, then what the lock installs on the
    base: one process for `lint` and `package` alike, so that either reuses the other's result."""
    project = request.project
    wheel, staged = await MultiGet(
        Get(UvWheel, UvWheelRequest(host.value)),
        Get(
            Digest,
            AddPrefix(
                project.workspace.lock_digest if project.workspace else project.digest, "project"
            ),
        ),
    )
    return await Get(
        Process,
        ImageToolRequest(
            argv=export_lock_argv(project),
            description=f"Check {project.lock_path}",
            input_digest=staged,
            output_files=(LOCK_EXPORT,),
            # uv builds the metadata of a package whose metadata is not static with its pinned
            # build backend, which the check installs from the index.
            needs_network_trust=project.builds_wheels,
            append_only_caches=FrozenDict({LOCK_CHECK_CACHE_NAME: LOCK_CHECK_CACHE_PATH}),
            uv=wheel,
        ),
    )


@rule
async def export_service_lock(project: ServiceProject) -> LockExport:
    process = await Get(Process, LockExportProcessRequest(project))
    result = await Get(ProcessResult, Process, process)
    (export,) = await Get(DigestContents, Digest, result.output_digest)
    return LockExport.from_json(json.loads(export.content), where=LOCK_EXPORT)


async def venv_project_digest(project: ServiceProject, export: LockExport, own: Digest) -> Digest:
    """What the venv layer builds its local packages from: in a workspace, the files of the
    members the service installs and the root's build constraints, not the workspace's lock,
    which every member shares; otherwise `own`, the service's uv project and its local
    packages."""
    if not export.local_directories:
        return EMPTY_DIGEST
    if not project.workspace:
        return own
    return await Get(
        Digest, MergeDigests([project.workspace.packages_digest, project.build_constraints])
    )


@dataclass(frozen=True)
class ServiceNativeCheckRequest:
    """Check a service's venv layers against the base it is built on."""

    base: BuiltBaseImage
    base_request: BaseImageRequest
    venv_layers: tuple[BuiltLayer, ...]
    spec: str


@rule
async def check_service_native_libraries(request: ServiceNativeCheckRequest) -> NativeCheck:
    base, base_request = request.base, request.base_request
    base_spec = str(base_request.address)
    layout_files, base_sources = await MultiGet(
        Get(Digest, DigestSubset(base.image.digest, PathGlobs([f"{IMAGE_LAYOUT}/**"]))),
        Get(BaseSources, BaseImageRequest, base_request),
    )
    # A base pulled from a registry has no Debian lock: the message then names no package.
    lock_file = base_sources.files.get(BASE_LOCK_FILE)
    lock_files = [FileContent("packages.lock.json", lock_file.content)] if lock_file else []
    layout, base_lock = await MultiGet(
        Get(Digest, RemovePrefix(layout_files, IMAGE_LAYOUT)),
        Get(Digest, CreateDigest(lock_files)),
    )
    libraries = await Get(
        BaseLibraries,
        BaseLibrariesRequest(layout, f"List the shared libraries of {base_spec}"),
    )
    return await Get(
        NativeCheck,
        NativeCheckRequest(
            request.venv_layers,
            libraries,
            base_lock,
            base_spec,
            f"Check the native libraries of the venv of {request.spec}",
        ),
    )


def distribution_layer_groups(
    distributions: tuple[LockedDistribution, ...], limit: int
) -> tuple[tuple[LockedDistribution, ...], ...]:
    """One layer per distribution, so that every service locking the same distribution shares
    its layer; past `limit`, the PyPI distributions last in name order share the last layer.
    A distribution of another index always has a layer of its own: a layer installs from one
    index."""
    ordered = sorted(distributions, key=lambda d: d.name)
    if len(ordered) <= limit:
        return tuple((d,) for d in ordered)
    # A distribution built from its sdist installs its one wheel: a layer of its own too.
    private = [(d,) for d in ordered if d.index or d.sdist_url]
    public = [d for d in ordered if not d.index and not d.sdist_url]
    shared = max(limit - len(private), 1)
    groups = [*((d,) for d in public[: shared - 1]), tuple(public[shared - 1 :]), *private]
    return tuple(sorted((g for g in groups if g), key=lambda g: g[0].name))


def merged_venv_layers(
    layers: tuple[BuiltLayer, ...], sizes: tuple[int, ...]
) -> tuple[tuple[BuiltLayer, ...], tuple[BuiltLayer, ...]]:
    """Of a service's venv layers (bottom first) and their blobs' sizes: those the image lists
    as they are, and those it lists merged into one layer above them (`layers_to_merge`). Every
    one stays a layer of its own in the build, shared by the services that have it."""
    merged = layers_to_merge(sizes)
    kept = tuple(layer for index, layer in enumerate(layers) if index not in merged)
    return kept, tuple(layers[index] for index in merged)


def distribution_indexes(export: LockExport) -> tuple[PackageIndex, ...]:
    """The indexes other than PyPI that the lock installs from."""
    arguments = sorted({d.index for d in export.distributions if d.index})
    return tuple(PackageIndex.from_argument(argument) for argument in arguments)


class DistributionInstallError(Exception):
    """A distribution the lock pins could not be installed; names the lock and the fix."""


def with_relock_command(project: ServiceProject, message: str) -> str:
    """The image tool's message with the service's own re-lock command as its fix, where the
    tool's process (shared by every service that locks a distribution) wrote the placeholder."""
    return message.replace(RELOCK_PLACEHOLDER, f"`{project.relock_command}`")


def distribution_install_error(project: ServiceProject, failure: ProcessExecutionFailure) -> str:
    """The image tool's message, with the lock that pins the distribution and its fix: the
    layer's process is shared by every service locking it, so it cannot name the service."""
    stderr = failure.stderr.decode(errors="replace")
    message = with_relock_command(project, tool_message(failure.exit_code, stderr))
    return f"Installing a distribution that {project.lock_path} pins failed:\n\n{message}"


def is_distribution_layer_failure(failure: ProcessExecutionFailure) -> bool:
    # The descriptions of `build_distribution_layer`'s and `sdist_wheel_process`'s processes,
    # as the failure quotes them.
    return str(failure).startswith(
        (f"Process '{steps.INSTALL} ", f"Process '{SDIST_WHEEL_DESCRIPTION} ")
    )


def sdist_wheel_requests(
    project: ServiceProject, distributions: Iterable[LockedDistribution]
) -> tuple[SdistWheelRequest, ...]:
    """The builds of those of `distributions` locked with only an sdist: `package` installs
    their wheels, and `lint` runs the very same builds to check them."""
    return tuple(
        SdistWheelRequest(d, project.platform, project.build_constraints)
        for d in distributions
        if d.sdist_url
    )


async def distribution_layer_requests(
    project: ServiceProject, groups: tuple[tuple[LockedDistribution, ...], ...]
) -> tuple[DistributionLayerRequest, ...]:
    """A layer request per group; a distribution locked with only an sdist is built into a
    wheel first, which its layer installs."""
    builds = sdist_wheel_requests(project, (group[0] for group in groups))
    built = await MultiGet(Get(SdistWheel, SdistWheelRequest, build) for build in builds)
    wheels = {build.distribution: wheel for build, wheel in zip(builds, built)}
    requests = []
    for group in groups:
        wheel = wheels.get(group[0])
        requests.append(
            DistributionLayerRequest(group, project.platform, wheel.digest, wheel.path)
            if wheel
            else DistributionLayerRequest(group, project.platform)
        )
    return tuple(requests)


class ProjectLayerError(Exception):
    """The layer of the service's own project could not be built (e.g. its project does not
    build); the image tool's message names the service and the fix."""


def is_project_layer_failure(
    failure: ProcessExecutionFailure, spec: str, architecture: str = ""
) -> bool:
    # The description of the project layer's process, as the failure quotes it.
    return str(failure).startswith(f"Process '{project_layer_description(spec, architecture)}'")


def project_layer_description(spec: str, architecture: str = "") -> str:
    return steps.describe(steps.BUILD, f"project layer of {spec}{platform_suffix(architecture)}")


async def service_files(sources: Digest, paths: Iterable[str], root: str) -> Digest:
    """The files of `sources` at `paths` (repository paths), relative to the service's
    directory `root`."""
    subset = await Get(Digest, DigestSubset(sources, PathGlobs(paths)))
    return await Get(Digest, RemovePrefix(subset, root)) if root else subset


@rule(desc="Build a service image", level=LogLevel.DEBUG)
async def build_service_image(
    request: ServiceImageRequest, global_options: GlobalOptions, registries: RegistriesSubsystem
) -> BuiltImage:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    spec = str(request.address)
    root = request.address.spec_path
    # First: its sources cannot even be read when a link in them is absolute.
    service_context = await Get(ServiceContext, ServiceContextRequest(request.address))
    if service_context.violations:
        raise ContextRuleViolation(service_context.message())
    # Before any step runs: a build that cannot date its image fails at once.
    created = await image_created(target)
    sources, member = await MultiGet(
        Get(HydratedSources, HydrateSourcesRequest(target[EsbServiceSourcesField])),
        Get(ServiceWorkspace, ServiceWorkspaceRequest(request.address)),
    )
    if not member.member:
        check_service_files(request.address, sources.snapshot.files)
    # Before the layers, so that a stale lock is reported with this service's lock file and
    # fix, once, rather than by every layer process.
    project = await Get(
        ServiceProject, ServiceProjectRequest(request.address, request.architecture)
    )
    export = await Get(LockExport, ServiceProject, project)
    platform = project.platform
    base_request = BaseImageRequest(project.base_address, request.architecture)
    # By file, not by exclusion globs: those would keep the directories of the project's files.
    project_files = await Get(
        Snapshot,
        DigestSubset(
            sources.snapshot.digest,
            PathGlobs(project_globs(request.address, project.local_packages)),
        ),
    )
    # Shipped files are files of the sources: those left are exactly the files of `app_files`.
    app_paths = sorted(set(service_context.shipped_files) - set(project_files.files))
    app_files = await service_files(sources.snapshot.digest, app_paths, root)
    # The venv builds the local packages from these alone, whatever else the project holds.
    venv_project = project_files.digest
    venv_project = await Get(Digest, RemovePrefix(venv_project, root)) if root else venv_project
    # What the build of the service's own project reads: its files, without the lock (whose
    # changes leave its wheel alone).
    build_files = EMPTY_DIGEST
    if project.is_package:
        project_names = (SERVICE_PYPROJECT_FILE, SERVICE_BUILD_CONSTRAINTS_FILE)
        build_paths = {
            *service_context.shipped_files,
            *(in_service(request.address, name) for name in project_names),
        }
        build_files = await service_files(
            sources.snapshot.digest, sorted(build_paths - {project.lock_path}), root
        )
        if project.workspace:
            build_files = await Get(Digest, MergeDigests([build_files, project.build_constraints]))
    venv_project = await venv_project_digest(project, export, venv_project)
    groups = distribution_layer_groups(export.distributions, MAX_DISTRIBUTION_LAYERS)
    indexes = distribution_indexes(export)
    if indexes:
        await Get(IndexCredentials, IndexCredentialsRequest(indexes))
    try:
        layer_requests = await distribution_layer_requests(project, groups)
        project_layer_requests = (
            [
                ProjectLayerRequest(
                    build_files,
                    platform,
                    spec,
                    root or ".",
                    project_layer_description(spec, request.architecture),
                    has_build_constraints=project.has_build_constraints,
                )
            ]
            if project.is_package
            else []
        )
        base, uv, venv, *layers = await MultiGet(
            Get(BuiltBaseImage, BaseImageRequest, base_request),
            Get(BuiltLayer, UvLayerRequest(platform.tool_platform)),
            Get(
                BuiltLayer,
                VenvLayerRequest(
                    venv_project,
                    export.local_directories,
                    platform,
                    source_path(tuple(posixpath.relpath(p, root or ".") for p in app_paths)),
                    (
                        steps.describe(steps.BUILD, f"venv layer of {spec}")
                        if export.local_directories
                        else steps.describe(steps.BUILD, f"venv layer ({platform.python_version})")
                    ),
                    # Only with local packages: messages about them need the service's directory,
                    # and without them the layer is the same for every service on the base.
                    display_dir=(
                        (project.workspace.display_root if project.workspace else root)
                        if export.local_directories
                        else None
                    ),
                    has_build_constraints=project.has_build_constraints,
                ),
            ),
            *(Get(BuiltLayer, DistributionLayerRequest, r) for r in layer_requests),
            *(Get(BuiltLayer, ProjectLayerRequest, r) for r in project_layer_requests),
        )
    except ProcessExecutionFailure as failure:
        if is_project_layer_failure(failure, spec, request.architecture):
            stderr = failure.stderr.decode(errors="replace")
            raise ProjectLayerError(tool_message(failure.exit_code, stderr)) from None
        if not is_distribution_layer_failure(failure):
            raise
        raise DistributionInstallError(distribution_install_error(project, failure)) from None
    # The service's own project, when it is a package, comes last, above what it depends on.
    distributions, own_project = layers[: len(layer_requests)], layers[len(layer_requests) :]
    venv_layers = (*distributions, venv)
    blobs = await MultiGet(Get(DigestEntries, Digest, layer.digest) for layer in venv_layers)
    kept, small = merged_venv_layers(
        venv_layers,
        tuple(layer_blob_entry(entries).file_digest.serialized_bytes_length for entries in blobs),
    )
    merged = (await Get(BuiltLayer, MergedLayerRequest(small)),) if small else ()
    base_metadata = base.image.metadata
    labels = {
        "org.opencontainers.image.base.digest": base.image.image_digest,
        "org.opencontainers.image.base.name": base_metadata["repository"],
        **image_labels(target),
    }
    assembly = ImageAssemblyRequest(
        description=steps.describe(
            steps.ASSEMBLE, f"the image {spec}{platform_suffix(request.architecture)}"
        ),
        repository=target[EsbImageRepositoryField].image_repository(registries.default_repository),
        tags=target[EsbImageTagsField].literal(),
        architecture=platform.architecture,
        config_json=config_json(
            ConfigChanges(
                cmd=target[EsbServiceCommandField].value or (),
                env=target[EsbImageEnvironmentField].value or {},
                exposed_ports=target[EsbServicePortsField].normalized(),
                volumes=target[EsbServiceVolumesField].value or (),
                labels=labels,
                working_dir=target[EsbServiceWorkdirField].value,
                user=target[EsbImageUserField].value,
                stop_signal=target[EsbImageStopSignalField].value,
            )
        ),
        layers=(uv, *kept, *merged, *own_project),
        base=base.image,
        created=created,
        app=AppLayerFiles(app_files, platform, tuple(global_options.build_patterns)),
    )
    # The check and the assembly run side by side: neither reads the other's output, and
    # either one failing fails the image before anything reaches `dist/`. Run one after the
    # other, every assembly of a fresh clone's build would wait for the base's library list.
    _, image = await MultiGet(
        Get(NativeCheck, ServiceNativeCheckRequest(base, base_request, venv_layers, spec)),
        Get(BuiltImage, ImageAssemblyRequest, assembly),
    )
    return image


class ContextRuleViolation(Exception):
    """The service's image would take inputs from outside its directory, or ship a secret."""


def rules():
    return [*collect_rules(), *context.rules(), *index_credentials.rules(), *sdists.rules()]
