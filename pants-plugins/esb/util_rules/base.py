"""The base image: pinned Debian packages → a root filesystem layer, plus the trust/tools layer."""

from __future__ import annotations

import json
from dataclasses import dataclass

from esb.subsystems.image_tool import ImageToolRequest
from esb.target_types import (
    BASE_LOCK_FILE,
    ENTRYPOINT_SCRIPT_FILE,
    TRUST_SCRIPT_FILE,
    EsbBaseImageTarget,
    EsbBasePackagesField,
    EsbBaseServiceAccountsField,
    EsbBaseSourcesField,
    EsbBaseStopSignalField,
    EsbImageEnvironmentField,
    EsbImageLabelsField,
    EsbImageRepositoryField,
    EsbImageTagsField,
    EsbImageUserField,
)
from esb.util_rules.image import BuiltImage, ImageAssemblyRequest, config_json, optional_config
from esb.util_rules.layers import BuiltLayer, FilesLayerRequest, layer_request, run_layer_process
from esb.util_rules.platform import BasePlatform
from pants.engine.addresses import Address
from pants.engine.fs import (
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DownloadFile,
    FileContent,
    FileDigest,
    MergeDigests,
)
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

ENTRYPOINT = f"/usr/local/bin/{ENTRYPOINT_SCRIPT_FILE}"
# What every image gets unless its target overrides it: the venv first on PATH, and the
# directory operators mount root CAs into (see ensure_ca_trust.sh).
BASE_ENVIRONMENT = FrozenDict(
    {
        "LANG": "C.UTF-8",
        "PATH": "/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "SSL_CERT_DIR": "/etc/esb/ca-certificates",
    }
)


class BaseLockError(ValueError):
    pass


@dataclass(frozen=True)
class BaseImageRequest:
    address: Address


@dataclass(frozen=True)
class BuiltBaseImage:
    image: BuiltImage
    platform: BasePlatform


@dataclass(frozen=True)
class DebianPackage:
    name: str
    url: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BaseLock:
    requested: tuple[str, ...]
    packages: tuple[DebianPackage, ...]
    platform: BasePlatform


def parse_base_lock(content: bytes, *, lock_path: str, target: str) -> BaseLock:
    fix = f"Fix: regenerate it with `pants esb-lock {target}`."
    try:
        lock = json.loads(content)
        packages = tuple(
            DebianPackage(p["name"], p["url"], p["sha256"], int(p["size"]))
            for p in lock["packages"]
        )
        requested = tuple(lock["requested"])
    except (ValueError, KeyError, TypeError) as e:
        raise BaseLockError(f"{lock_path} (the package lock of {target}) is malformed: {e!r}.\n\n{fix}")
    return BaseLock(
        requested=requested,
        packages=packages,
        platform=BasePlatform.from_lock(lock, lock_path=lock_path, target=target),
    )


def check_lock_matches_target(lock: BaseLock, packages: tuple[str, ...], *, lock_path: str, target: str) -> None:
    if sorted(lock.requested) != sorted(packages):
        added = sorted(set(packages) - set(lock.requested))
        removed = sorted(set(lock.requested) - set(packages))
        raise BaseLockError(
            f"{lock_path} is stale: the `{EsbBasePackagesField.alias}` field of {target} "
            f"{'adds ' + ', '.join(added) if added else ''}"
            f"{' and ' if added and removed else ''}"
            f"{'removes ' + ', '.join(removed) if removed else ''} compared with the lock.\n\n"
            f"Fix: run `pants esb-lock {target}` and commit {lock_path}."
        )


@dataclass(frozen=True)
class RootfsLayerRequest:
    """`inputs` holds `packages.lock.json` and the locked `.deb` files under `debs/`."""

    inputs: Digest
    service_accounts: tuple[str, ...]
    description: str


@rule
async def build_rootfs_layer(request: RootfsLayerRequest) -> BuiltLayer:
    return await run_layer_process(
        "rootfs",
        layer_request(
            (
                "debian-rootfs",
                "--lock",
                "packages.lock.json",
                "--debs",
                "debs",
                "--compile-bytecode",
                *(arg for account in request.service_accounts for arg in ("--account", account)),
            ),
            request.description,
            request.inputs,
        ),
    )


@dataclass(frozen=True)
class BaseSources:
    """A base target's own files by name, and its parsed, checked package lock."""

    target: EsbBaseImageTarget
    files: FrozenDict[str, FileContent]
    lock: BaseLock


@rule
async def read_base_sources(request: BaseImageRequest) -> BaseSources:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    assert isinstance(target, EsbBaseImageTarget)
    sources = await Get(HydratedSources, HydrateSourcesRequest(target[EsbBaseSourcesField]))
    files = FrozenDict(
        {c.path.rsplit("/", 1)[-1]: c for c in await Get(DigestContents, Digest, sources.snapshot.digest)}
    )
    lock_file = files[BASE_LOCK_FILE]
    spec = str(request.address)
    lock = parse_base_lock(lock_file.content, lock_path=lock_file.path, target=spec)
    check_lock_matches_target(
        lock, target[EsbBasePackagesField].value or (), lock_path=lock_file.path, target=spec
    )
    return BaseSources(target, files, lock)


@rule
async def read_base_platform(request: BaseImageRequest) -> BasePlatform:
    """Read from the lock, so that images on the base can build their layers in parallel with it."""
    sources = await Get(BaseSources, BaseImageRequest, request)
    return sources.lock.platform


@rule(desc="Build a base image", level=LogLevel.DEBUG)
async def build_base_image(request: BaseImageRequest) -> BuiltBaseImage:
    sources = await Get(BaseSources, BaseImageRequest, request)
    target, contents, lock = sources.target, sources.files, sources.lock
    lock_file = contents[BASE_LOCK_FILE]
    spec = str(request.address)

    debs = await MultiGet(
        Get(Digest, DownloadFile(p.url, FileDigest(p.sha256, p.size))) for p in lock.packages
    )
    rootfs_inputs = await Get(
        Digest,
        MergeDigests(
            [
                await Get(Digest, AddPrefix(await Get(Digest, MergeDigests(debs)), "debs")),
                await Get(Digest, CreateDigest([FileContent("packages.lock.json", lock_file.content)])),
            ]
        ),
    )
    scripts = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(name, contents[name].content, is_executable=True)
                for name in (TRUST_SCRIPT_FILE, ENTRYPOINT_SCRIPT_FILE)
            ]
        ),
    )
    rootfs, tools = await MultiGet(
        Get(
            BuiltLayer,
            RootfsLayerRequest(
                rootfs_inputs,
                target[EsbBaseServiceAccountsField].value or (),
                f"Assemble the Debian root filesystem of {spec}",
            ),
        ),
        Get(
            BuiltLayer,
            FilesLayerRequest(
                "trust-tools", scripts, "usr/local/bin", f"Build the trust/tools layer of {spec}"
            ),
        ),
    )
    environment = {**BASE_ENVIRONMENT, **(target[EsbImageEnvironmentField].value or {})}
    image = await Get(
        BuiltImage,
        ImageAssemblyRequest(
            description=f"Assemble the image {spec}",
            repository=target[EsbImageRepositoryField].value_or_default(),
            tags=target[EsbImageTagsField].value or (),
            architecture=lock.platform.architecture,
            config_json=config_json(
                cmd=["python3"],
                entrypoint=[ENTRYPOINT],
                env=environment,
                labels=dict(target[EsbImageLabelsField].value or {}),
                stop_signal=target[EsbBaseStopSignalField].value,
                **optional_config(user=target[EsbImageUserField].value),
            ),
            layers=(rootfs, tools),
        ),
    )
    return BuiltBaseImage(image, lock.platform)


def rules():
    return collect_rules()
