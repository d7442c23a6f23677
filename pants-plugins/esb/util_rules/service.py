"""A service image: its base, then uv, then the venv from its `uv.lock`, then its own files."""

from __future__ import annotations

from dataclasses import dataclass

from esb.target_types import (
    SERVICE_LOCK_FILE,
    SERVICE_PYPROJECT_FILE,
    EsbImageEnvironmentField,
    EsbImageLabelsField,
    EsbImageRepositoryField,
    EsbImageStopSignalField,
    EsbImageTagsField,
    EsbImageUserField,
    EsbServiceBaseField,
    EsbServiceCommandField,
    EsbServicePortsField,
    EsbServiceSourcesField,
    EsbServiceWorkdirField,
)
from esb.util_rules.base import BaseImageRequest, BuiltBaseImage
from esb.util_rules.dependencies import ResolvedBaseAddress
from esb.util_rules.image import BuiltImage, ImageAssemblyRequest, config_json, optional_config
from esb.util_rules.platform import BasePlatform
from esb.util_rules.layers import BuiltLayer, FilesLayerRequest, UvLayerRequest, VenvLayerRequest
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestSubset, PathGlobs, RemovePrefix
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    InvalidFieldException,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.logging import LogLevel

APP_DIR = "app"
APP_SOURCE_PATH = f"/{APP_DIR}/src"


@dataclass(frozen=True)
class ServiceImageRequest:
    address: Address


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
            f"directory holds its uv project: create `{SERVICE_PYPROJECT_FILE}` and run "
            f"`uv lock` there, and keep both files in `{EsbServiceSourcesField.alias}`."
        )


@rule(desc="Build a service image", level=LogLevel.DEBUG)
async def build_service_image(request: ServiceImageRequest) -> BuiltImage:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    spec = str(request.address)
    root = request.address.spec_path
    base_address, sources = await MultiGet(
        Get(ResolvedBaseAddress, EsbServiceBaseField, target[EsbServiceBaseField]),
        Get(HydratedSources, HydrateSourcesRequest(target[EsbServiceSourcesField])),
    )
    check_service_files(request.address, sources.snapshot.files)
    base_request = BaseImageRequest(base_address.address)
    platform = await Get(BasePlatform, BaseImageRequest, base_request)

    project_globs = [f"{root}/{name}" for name in EsbServiceSourcesField.required_files]
    project, app_files = await MultiGet(
        Get(Digest, DigestSubset(sources.snapshot.digest, PathGlobs(project_globs))),
        Get(
            Digest,
            DigestSubset(
                sources.snapshot.digest,
                PathGlobs([f"{root}/**", *(f"!{glob}" for glob in project_globs)]),
            ),
        ),
    )
    project, app_files = await MultiGet(
        Get(Digest, RemovePrefix(project, root)), Get(Digest, RemovePrefix(app_files, root))
    )
    base, uv, venv, app = await MultiGet(
        Get(BuiltBaseImage, BaseImageRequest, base_request),
        Get(BuiltLayer, UvLayerRequest(platform.tool_platform)),
        Get(
            BuiltLayer,
            VenvLayerRequest(
                project,
                platform,
                APP_SOURCE_PATH,
                f"Install {root}/{SERVICE_LOCK_FILE} into the venv layer",
            ),
        ),
        Get(
            BuiltLayer,
            FilesLayerRequest("app", app_files, APP_DIR, f"Build the source layer of {spec}"),
        ),
    )
    base_metadata = base.image.metadata
    labels = {
        "org.opencontainers.image.base.digest": base.image.image_digest,
        "org.opencontainers.image.base.name": base_metadata["repository"],
        **(target[EsbImageLabelsField].value or {}),
    }
    return await Get(
        BuiltImage,
        ImageAssemblyRequest(
            description=f"Assemble the image {spec}",
            repository=target[EsbImageRepositoryField].value_or_default(),
            tags=target[EsbImageTagsField].value or (),
            architecture=platform.architecture,
            config_json=config_json(
                cmd=list(target[EsbServiceCommandField].value or ()),
                env=dict(target[EsbImageEnvironmentField].value or {}),
                exposed_ports=list(target[EsbServicePortsField].normalized()),
                labels=labels,
                working_dir=target[EsbServiceWorkdirField].value,
                **optional_config(
                    user=target[EsbImageUserField].value,
                    stop_signal=target[EsbImageStopSignalField].value,
                ),
            ),
            layers=(uv, venv, app),
            base=base.image,
        ),
    )


def rules():
    return collect_rules()
