"""Layers: each is one sandboxed image-tool process, so an unchanged layer is a cache hit.

Every layer process writes the same three files, `layer.tar.gz`, `layer.json` (its digest,
diff_id, size and media type) and `layer.inventory.json` (its package records), so that assembly
treats all kinds of layers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pants.engine.fs import (
    EMPTY_DIGEST,
    AddPrefix,
    Digest,
    DigestEntries,
    DigestSubset,
    FileEntry,
    MergeDigests,
    PathGlobs,
)
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.target_types import SERVICE_BUILD_CONSTRAINTS_FILE
from esb.util_rules.index_credentials import CREDENTIALS_CACHES, credentials_argv
from esb.util_rules.platform import BasePlatform
from esb_contract import commands, flags, steps
from esb_contract.lock_export import LockedDistribution

LAYER_BLOB = "layer.tar.gz"
LAYER_DESCRIPTOR = "layer.json"
LAYER_INVENTORY = "layer.inventory.json"
_OUTPUTS = (
    flags.OUT_BLOB,
    LAYER_BLOB,
    flags.OUT_DESCRIPTOR,
    LAYER_DESCRIPTOR,
    flags.OUT_INVENTORY,
    LAYER_INVENTORY,
)


@dataclass(frozen=True)
class BuiltLayer:
    """A digest holding `layer.tar.gz`, `layer.json` and `layer.inventory.json` at its root."""

    name: str
    digest: Digest
    contents: str = ""
    """What the layer holds, when its name does not say, e.g. `fastapi 0.115.6`."""

    @property
    def created_by(self) -> str:
        """The layer's entry in the image's history."""
        return f"esb: {self.name} layer" + (f" ({self.contents})" if self.contents else "")


async def run_layer_process(name: str, request: ImageToolRequest, contents: str = "") -> BuiltLayer:
    process = await Get(Process, ImageToolRequest, request)
    result = await Get(ProcessResult, Process, process)
    return BuiltLayer(name, result.output_digest, contents)


def layer_blob_entry(entries: DigestEntries) -> FileEntry:
    """The blob of a layer, of the entries of its `BuiltLayer.digest`: its file digest is the
    layer's OCI digest and size, known without reading a byte."""
    return next(e for e in entries if isinstance(e, FileEntry) and e.path == LAYER_BLOB)


def layer_request(
    argv: tuple[str, ...],
    description: str,
    input_digest: Digest,
    *,
    needs_network_trust: bool = False,
    needs_credentials: bool = False,
    append_only_caches: FrozenDict[str, str] = FrozenDict(),
    uv: Optional[UvWheel] = None,
) -> ImageToolRequest:
    return ImageToolRequest(
        argv=(*argv, *(credentials_argv() if needs_credentials else ()), *_OUTPUTS),
        description=description,
        input_digest=input_digest,
        output_files=(LAYER_BLOB, LAYER_DESCRIPTOR, LAYER_INVENTORY),
        needs_network_trust=needs_network_trust,
        append_only_caches=FrozenDict(
            {**append_only_caches, **(CREDENTIALS_CACHES if needs_credentials else {})}
        ),
        uv=uv,
    )


@dataclass(frozen=True)
class FilesLayerRequest:
    """Files of the repository, placed under `prefix` inside the image, owned by root."""

    name: str
    files: Digest
    prefix: str
    description: str


@rule
async def build_files_layer(request: FilesLayerRequest) -> BuiltLayer:
    staged = await Get(Digest, AddPrefix(request.files, "root"))
    return await run_layer_process(
        request.name,
        layer_request(
            (commands.LAYER_FROM_DIR, flags.ROOT, "root", flags.PREFIX, request.prefix),
            request.description,
            staged,
        ),
    )


@dataclass(frozen=True)
class MergedLayerRequest:
    """Layers, bottom first, written as one that holds what stacking them would leave."""

    layers: tuple[BuiltLayer, ...]


@rule
async def merge_layers(request: MergedLayerRequest) -> BuiltLayer:
    # Keyed by the parts' blobs alone: services whose small layers are the same share it.
    directories = tuple(f"layers/{index:03d}" for index in range(len(request.layers)))
    blobs = await MultiGet(
        Get(Digest, DigestSubset(layer.digest, PathGlobs([LAYER_BLOB]))) for layer in request.layers
    )
    staged = await MultiGet(
        Get(Digest, AddPrefix(blob, directory)) for blob, directory in zip(blobs, directories)
    )
    contents = ", ".join(layer.contents or layer.name for layer in request.layers)
    return await run_layer_process(
        "merged",
        layer_request(
            (
                commands.MERGE_LAYERS,
                *(a for d in directories for a in (flags.LAYER, f"{d}/{LAYER_BLOB}")),
            ),
            steps.describe(steps.BUILD, f"merged layer of {contents}"),
            await Get(Digest, MergeDigests(staged)),
        ),
        contents=contents,
    )


@dataclass(frozen=True)
class UvLayerRequest:
    platform: str


@rule(desc="Build the uv layer")
async def build_uv_layer(request: UvLayerRequest) -> BuiltLayer:
    wheel = await Get(UvWheel, UvWheelRequest(request.platform))
    return await run_layer_process(
        "uv",
        layer_request(
            (commands.UV_LAYER,),
            steps.describe(steps.BUILD, f"uv layer ({request.platform})"),
            EMPTY_DIGEST,
            uv=wheel,
        ),
    )


@dataclass(frozen=True)
class DistributionLayerRequest:
    """Locked distributions (usually one), installed for the base's Python and platform."""

    distributions: tuple[LockedDistribution, ...]
    platform: BasePlatform
    wheel: Digest = EMPTY_DIGEST
    """For a distribution built from its sdist (alone in its layer): the wheel built, at
    `wheel_path`, installed instead of a download."""
    wheel_path: str = ""


def target_argv(platform: BasePlatform) -> tuple[str, ...]:
    return (
        flags.PYTHON_VERSION,
        platform.python_version,
        flags.PYTHON_PLATFORM,
        platform.uv_python_platform,
        flags.INTERPRETER,
        platform.interpreter,
    )


@rule
async def build_distribution_layer(request: DistributionLayerRequest, host: Platform) -> BuiltLayer:
    # The key holds the requirements (with their hashes) and the base's platform facts, nothing
    # of the service: every service that locks a distribution shares its one layer.
    wheel = await Get(UvWheel, UvWheelRequest(host.value))
    if request.wheel_path:
        requirements: tuple[str, ...] = (flags.WHEEL, request.wheel_path)
    else:
        requirements = sum(((flags.REQUIREMENT, d.requirement) for d in request.distributions), ())
    # A layer installs from one index: a distribution of a private index has a layer of its own.
    index = request.distributions[0].index
    names = ", ".join(d.pinned for d in request.distributions)
    return await run_layer_process(
        "distribution",
        layer_request(
            (
                commands.DISTRIBUTION_LAYER,
                *requirements,
                *target_argv(request.platform),
                *((flags.INDEX, index) if index else ()),
            ),
            steps.describe(steps.INSTALL, f"{names} into a layer"),
            request.wheel,
            needs_network_trust=True,
            needs_credentials=bool(index),
            uv=wheel,
        ),
        contents=", ".join(_name_and_version(d) for d in request.distributions),
    )


def _name_and_version(distribution: LockedDistribution) -> str:
    """`name version` of the requirement, for the image's history."""
    name, _, version = distribution.pinned.partition("==")
    return f"{name} {version}".strip()


@dataclass(frozen=True)
class VenvLayerRequest:
    """The files that make `/.venv` a venv, and the service's local packages, if any: then
    `project` holds the uv project (`pyproject.toml`, `uv.lock`, the packages' files) at its
    root; otherwise it is empty, and the layer is the same for every service on the base."""

    project: Digest
    local_packages: tuple[str, ...]
    platform: BasePlatform
    source_path: str
    description: str
    display_dir: Optional[str] = None
    """The service's directory, for messages; it enters the process's key."""
    has_build_constraints: bool = False
    """Whether `project` holds the service's `build-constraints.txt`."""


async def staged_project(
    project: Digest, host: Platform, has_build_constraints: bool
) -> tuple[Digest, tuple[str, ...], UvWheel]:
    """The uv project `project` staged at `project/`, for a process that builds from it with
    uv: the digest, the arguments that name it, and uv."""
    wheel, staged = await MultiGet(
        Get(UvWheel, UvWheelRequest(host.value)),
        Get(Digest, AddPrefix(project, "project")),
    )
    constraints = (flags.BUILD_CONSTRAINTS, f"project/{SERVICE_BUILD_CONSTRAINTS_FILE}")
    argv = (flags.PROJECT, "project")
    return staged, (*argv, *(constraints if has_build_constraints else ())), wheel


@rule
async def build_venv_layer(request: VenvLayerRequest, host: Platform) -> BuiltLayer:
    argv = [
        commands.VENV_LAYER,
        *target_argv(request.platform),
        flags.SOURCE_PATH,
        request.source_path,
    ]
    inputs = EMPTY_DIGEST
    uv = None
    if request.local_packages:
        inputs, project_argv, uv = await staged_project(
            request.project, host, request.has_build_constraints
        )
        argv += project_argv
        argv += [
            arg for directory in request.local_packages for arg in (flags.LOCAL_PACKAGE, directory)
        ]
    if request.display_dir:
        argv += [flags.DISPLAY_DIR, request.display_dir]
    return await run_layer_process(
        "venv",
        layer_request(
            tuple(argv),
            request.description,
            inputs,
            needs_network_trust=bool(request.local_packages),
            uv=uv,
        ),
    )


@dataclass(frozen=True)
class ProjectLayerRequest:
    """The layer of a service that is a package: its own project built from `project` (the files
    its build reads, at the digest's root) and installed into `/.venv`. Its files under `/app`
    are the assembly's (`esb.util_rules.image.AppLayerFiles`)."""

    project: Digest
    platform: BasePlatform
    service: str
    """The service's target, for messages."""
    display_dir: str
    description: str
    has_build_constraints: bool = False
    """Whether `project` holds the service's `build-constraints.txt`."""


@rule
async def build_project_layer(request: ProjectLayerRequest, host: Platform) -> BuiltLayer:
    inputs, project_argv, uv = await staged_project(
        request.project, host, request.has_build_constraints
    )
    argv = (
        commands.PROJECT_LAYER,
        *target_argv(request.platform),
        flags.SERVICE,
        request.service,
        flags.DISPLAY_DIR,
        request.display_dir,
        *project_argv,
    )
    return await run_layer_process(
        "project",
        layer_request(argv, request.description, inputs, needs_network_trust=True, uv=uv),
    )


BASE_LIBRARIES = "base-libraries.json"


@dataclass(frozen=True)
class BaseLibrariesRequest:
    """A base image's OCI layout (at the digest's root), whose shared libraries to list."""

    layout: Digest
    description: str


@dataclass(frozen=True)
class BaseLibraries:
    """A digest holding `base-libraries.json`: the libraries the base's dynamic linker finds."""

    digest: Digest


@rule
async def list_base_libraries(request: BaseLibrariesRequest) -> BaseLibraries:
    # Depends on the base alone: every service on the base shares the one result.
    layout = await Get(Digest, AddPrefix(request.layout, "base.oci"))
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(commands.BASE_LIBRARIES, flags.LAYOUT, "base.oci", flags.OUT, BASE_LIBRARIES),
            description=request.description,
            input_digest=layout,
            output_files=(BASE_LIBRARIES,),
        ),
    )
    result = await Get(ProcessResult, Process, process)
    return BaseLibraries(result.output_digest)


@dataclass(frozen=True)
class NativeCheckRequest:
    """Check that the venv layers' ELF files find their libraries in the venv or the base.

    `base_lock` holds the base's `packages.lock.json` at its root (or nothing): it lets the
    message tell a package the base lacks from one it has.
    """

    venv_layers: tuple[BuiltLayer, ...]
    base_libraries: BaseLibraries
    base_lock: Digest
    base_name: str
    description: str


@dataclass(frozen=True)
class NativeCheck:
    """The venv's native libraries are all found."""


def check_native_argv(layers: int, base_name: str, has_base_lock: bool) -> tuple[str, ...]:
    return (
        commands.CHECK_NATIVE,
        *(
            arg
            for index in range(layers)
            for arg in (flags.VENV_BLOB, f"venv/{index}/{LAYER_BLOB}")
        ),
        flags.BASE_LIBRARIES,
        BASE_LIBRARIES,
        flags.BASE,
        base_name,
        *((flags.BASE_LOCK, "packages.lock.json") if has_base_lock else ()),
    )


@rule
async def check_native_libraries(request: NativeCheckRequest) -> NativeCheck:
    # A process of its own, after the venv layers: they stay keyed by what they install (so
    # services share them), and only this small check re-runs when the base changes.
    layers = await MultiGet(
        Get(Digest, AddPrefix(layer.digest, f"venv/{index}"))
        for index, layer in enumerate(request.venv_layers)
    )
    inputs = await Get(
        Digest, MergeDigests([*layers, request.base_libraries.digest, request.base_lock])
    )
    process = await Get(
        Process,
        ImageToolRequest(
            argv=check_native_argv(
                len(request.venv_layers), request.base_name, request.base_lock != EMPTY_DIGEST
            ),
            description=request.description,
            input_digest=inputs,
        ),
    )
    await Get(ProcessResult, Process, process)
    return NativeCheck()


def rules():
    return collect_rules()
