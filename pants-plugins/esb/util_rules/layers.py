"""Layers: each is one sandboxed image-tool process, so an unchanged layer is a cache hit.

Every layer process writes the same three files, `layer.tar.gz`, `layer.json` (its digest,
diff_id, size and media type) and `layer.inventory.json` (its package records), so that assembly
treats all kinds of layers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.util_rules.platform import BasePlatform
from pants.engine.fs import EMPTY_DIGEST, AddPrefix, Digest, MergeDigests
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule

LAYER_BLOB = "layer.tar.gz"
LAYER_DESCRIPTOR = "layer.json"
LAYER_INVENTORY = "layer.inventory.json"
VENV_PACKAGES = "packages.json"
_OUTPUTS = (
    "--out-blob",
    LAYER_BLOB,
    "--out-descriptor",
    LAYER_DESCRIPTOR,
    "--out-inventory",
    LAYER_INVENTORY,
)


@dataclass(frozen=True)
class BuiltLayer:
    """A digest holding `layer.tar.gz`, `layer.json` and `layer.inventory.json` at its root."""

    name: str
    digest: Digest


async def run_layer_process(name: str, request: ImageToolRequest) -> BuiltLayer:
    process = await Get(Process, ImageToolRequest, request)
    result = await Get(ProcessResult, Process, process)
    return BuiltLayer(name, result.output_digest)


def layer_request(
    argv: tuple[str, ...],
    description: str,
    input_digest: Digest,
    *,
    extra_outputs: tuple[str, ...] = (),
    needs_network_trust: bool = False,
) -> ImageToolRequest:
    return ImageToolRequest(
        argv=(*argv, *_OUTPUTS),
        description=description,
        input_digest=input_digest,
        output_files=(LAYER_BLOB, LAYER_DESCRIPTOR, LAYER_INVENTORY, *extra_outputs),
        needs_network_trust=needs_network_trust,
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
            ("layer-from-dir", "--root", "root", "--prefix", request.prefix),
            request.description,
            staged,
        ),
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
            ("uv-layer", "--wheel", wheel.filename),
            f"Build the uv layer ({request.platform})",
            wheel.digest,
        ),
    )


@dataclass(frozen=True)
class VenvLayerRequest:
    """A service's uv project at the digest's root: `pyproject.toml`, `uv.lock` and the files
    of the local packages the lock names, nothing else."""

    project: Digest
    platform: BasePlatform
    source_path: str
    description: str
    display_dir: Optional[str] = None
    """The service's directory, for messages; it enters the process's key."""


@rule
async def build_venv_layer(request: VenvLayerRequest, host: Platform) -> BuiltLayer:
    # The host's uv installs for the image's platform. The key holds only the project and the
    # base's platform facts, so services with identical locks share one process result, hence
    # one byte-identical layer.
    wheel, project = await MultiGet(
        Get(UvWheel, UvWheelRequest(host.value)),
        Get(Digest, AddPrefix(request.project, "project")),
    )
    inputs = await Get(Digest, MergeDigests([wheel.digest, project]))
    platform = request.platform
    return await run_layer_process(
        "venv",
        layer_request(
            (
                "venv-layer",
                "--project",
                "project",
                "--uv",
                wheel.filename,
                "--python-version",
                platform.python_version,
                "--python-platform",
                platform.uv_python_platform,
                "--interpreter",
                platform.interpreter,
                "--source-path",
                request.source_path,
                "--out-packages",
                VENV_PACKAGES,
                *(("--display-dir", request.display_dir) if request.display_dir else ()),
            ),
            request.description,
            inputs,
            extra_outputs=(VENV_PACKAGES,),
            needs_network_trust=True,
        ),
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
            argv=("base-libraries", "--layout", "base.oci", "--out", BASE_LIBRARIES),
            description=request.description,
            input_digest=layout,
            output_files=(BASE_LIBRARIES,),
        ),
    )
    result = await Get(ProcessResult, Process, process)
    return BaseLibraries(result.output_digest)


@dataclass(frozen=True)
class NativeCheckRequest:
    """Check that the venv layer's ELF files find their libraries in the venv or the base.

    `base_lock` holds the base's `packages.lock.json` at its root (or nothing): it lets the
    message tell a package the base lacks from one it has.
    """

    venv: BuiltLayer
    base_libraries: BaseLibraries
    base_lock: Digest
    base_name: str
    description: str


@dataclass(frozen=True)
class NativeCheck:
    """The venv's native libraries are all found."""


def check_native_argv(base_name: str, has_base_lock: bool) -> tuple[str, ...]:
    return (
        "check-native",
        "--venv-blob",
        f"venv/{LAYER_BLOB}",
        "--base-libraries",
        BASE_LIBRARIES,
        "--base",
        base_name,
        *(("--base-lock", "packages.lock.json") if has_base_lock else ()),
    )


@rule
async def check_native_libraries(request: NativeCheckRequest) -> NativeCheck:
    # A process of its own, after the venv layer: the layer stays keyed by the lock alone (so
    # identical locks share it), and only this small check re-runs when the base changes.
    venv = await Get(Digest, AddPrefix(request.venv.digest, "venv"))
    inputs = await Get(
        Digest, MergeDigests([venv, request.base_libraries.digest, request.base_lock])
    )
    process = await Get(
        Process,
        ImageToolRequest(
            argv=check_native_argv(request.base_name, request.base_lock != EMPTY_DIGEST),
            description=request.description,
            input_digest=inputs,
        ),
    )
    await Get(ProcessResult, Process, process)
    return NativeCheck()


def rules():
    return collect_rules()
