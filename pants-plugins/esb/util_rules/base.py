"""The base image: pinned Debian packages → a root filesystem layer, or an upstream image pulled
by digest (plus its service accounts), then the trust/tools layer."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.engine.fs import (
    CreateDigest,
    Digest,
    DigestContents,
    FileContent,
)
from pants.engine.process import FallibleProcessResult, Process
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    HydratedSources,
    HydrateSourcesRequest,
    InvalidFieldException,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.util.frozendict import FrozenDict
from pants.util.logging import LogLevel

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import RegistriesSubsystem
from esb.target_types import (
    BASE_LOCK_FILE,
    ENTRYPOINT_SCRIPT_FILE,
    TRUST_SCRIPT_FILE,
    EsbBaseImageTarget,
    EsbBasePackagesField,
    EsbBasePlatformsField,
    EsbBaseServiceAccountsField,
    EsbBaseSourcesField,
    EsbBaseStopSignalField,
    EsbBaseUpstreamField,
    EsbImageEnvironmentField,
    EsbImageRepositoryField,
    EsbImageTagsField,
    EsbImageUserField,
    image_labels,
)
from esb.util_rules.created import image_created
from esb.util_rules.image import BuiltImage, ImageAssemblyRequest, config_json
from esb.util_rules.layers import BuiltLayer, FilesLayerRequest, layer_request
from esb.util_rules.platform import BasePlatform, BasePlatformError, platform_suffix
from esb.util_rules.upstream import (
    AccountsLayerRequest,
    PulledUpstreamImage,
    UpstreamImageRequest,
    UpstreamPlatformRequest,
)
from esb_contract import commands, flags, steps
from esb_contract.base_lock import LockedPackage, LockFormatError, PackageLocks
from esb_contract.image_spec import ConfigChanges
from esb_contract.messages import tool_message

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


class RootfsError(ValueError):
    """The root filesystem of a base could not be assembled: a pinned `.deb` could not be had
    as the lock pins it, or the tool refused the lock; the message names the package and the
    fix."""


@dataclass(frozen=True)
class BaseImageRequest:
    address: Address
    architecture: str = ""
    """The platform to build, by architecture; "" for the base's first (its only one, unless
    it lists several `platforms`)."""


@dataclass(frozen=True)
class BuiltBaseImage:
    image: BuiltImage
    platform: BasePlatform


@dataclass(frozen=True)
class BaseLock:
    """What a build of one platform of the base needs of its lock."""

    requested: tuple[str, ...]
    architectures: tuple[str, ...]
    """Every architecture the lock holds."""
    architecture: str
    """The one built."""
    packages: tuple[LockedPackage, ...]
    platform: BasePlatform


def parse_base_lock(content: bytes, *, lock_path: str, target: str, architecture: str) -> BaseLock:
    """What the backend needs of a base's lock for `architecture`, read as the image tool reads
    it."""
    where = f"{lock_path} (the package lock of {target})"
    fix = f"Fix: regenerate it with `pants esb-lock {target}`."
    try:
        locks = PackageLocks.from_json(content.decode())
    except (LockFormatError, UnicodeDecodeError) as e:
        raise BaseLockError(f"{where} is malformed: {e}\n\n{fix}") from None
    if architecture not in locks.architectures:
        raise BaseLockError(
            f"{where} is stale: it locks packages for {', '.join(locks.architectures)} and not "
            f"for {architecture}, which the `{EsbBasePlatformsField.alias}` field asks for.\n\n"
            f"Fix: run `pants esb-lock {target}` and commit {lock_path}."
        )
    lock = locks.for_architecture(architecture)
    try:
        platform = BasePlatform.from_lock(lock.platform, where=where)
    except BasePlatformError as e:
        raise BaseLockError(f"{e}\n\n{fix}") from None
    return BaseLock(lock.requested, locks.architectures, architecture, lock.packages, platform)


def check_lock_matches_target(
    lock: BaseLock,
    packages: tuple[str, ...],
    architectures: tuple[str, ...],
    *,
    lock_path: str,
    target: str,
) -> None:
    fix = f"Fix: run `pants esb-lock {target}` and commit {lock_path}."
    if sorted(lock.requested) != sorted(packages):
        added = sorted(set(packages) - set(lock.requested))
        removed = sorted(set(lock.requested) - set(packages))
        raise BaseLockError(
            f"{lock_path} is stale: the `{EsbBasePackagesField.alias}` field of {target} "
            f"{'adds ' + ', '.join(added) if added else ''}"
            f"{' and ' if added and removed else ''}"
            f"{'removes ' + ', '.join(removed) if removed else ''} compared with the lock.\n\n"
            f"{fix}"
        )
    if sorted(lock.architectures) != sorted(architectures):
        raise BaseLockError(
            f"{lock_path} is stale: it locks packages for {', '.join(lock.architectures)}, and "
            f"the `{EsbBasePlatformsField.alias}` field of {target} asks for "
            f"{', '.join(architectures)}.\n\n{fix}"
        )


@dataclass(frozen=True)
class RootfsLayerRequest:
    """`lock` is `packages.lock.json`; the process fetches the `.deb` files it pins."""

    lock: Digest
    lock_path: str
    target: str
    architecture: str
    """Whose packages of the lock to assemble."""
    service_accounts: tuple[str, ...]
    description: str


DEB_CACHE = FrozenDict({"esb_debs": ".cache/esb-debs"})
"""Where `debian-rootfs` keeps the `.deb` files it downloaded, by sha256, across runs: the
process fetches them itself, so that its cache key is the lock (which pins every file by URL,
sha256 and size) and a build whose root filesystem is cached downloads none."""


@rule
async def build_rootfs_layer(request: RootfsLayerRequest) -> BuiltLayer:
    layer = layer_request(
        (
            commands.DEBIAN_ROOTFS,
            flags.LOCK,
            "packages.lock.json",
            flags.ARCHITECTURE,
            request.architecture,
            flags.DEBS,
            DEB_CACHE["esb_debs"],
            flags.LOCK_PATH,
            request.lock_path,
            flags.LOCK_TARGET,
            request.target,
            flags.COMPILE_BYTECODE,
            *(arg for account in request.service_accounts for arg in (flags.ACCOUNT, account)),
        ),
        request.description,
        request.lock,
        needs_network_trust=True,
        append_only_caches=DEB_CACHE,
    )
    process = await Get(Process, ImageToolRequest, layer)
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise RootfsError(tool_message(result.exit_code, result.stderr.decode(errors="replace")))
    return BuiltLayer("rootfs", result.output_digest)


@dataclass(frozen=True)
class BaseLockCheckRequest:
    lock_file: FileContent
    target: str


@dataclass(frozen=True)
class CheckedBaseLock:
    """The lock is of the image tool's format and closed under its packages' dependencies."""


def base_lock_check_failure(request: BaseLockCheckRequest, exit_code: int, stderr: str) -> str:
    """The image tool's message (it names the packages and the dependencies they miss),
    introduced by the lock file and the target, and followed by the fix."""
    message = tool_message(exit_code, stderr)
    lock_path = request.lock_file.path
    return (
        f"{lock_path} (the package lock of {request.target}) cannot be built:\n{message}\n\n"
        f"Fix: run `pants esb-lock {request.target}` and commit {lock_path}; it writes a lock "
        "that holds every package the requested ones need."
    )


@rule
async def check_base_lock(request: BaseLockCheckRequest) -> CheckedBaseLock:
    """Before anything is downloaded: a lock edited by hand, or merged badly, can lack a package
    that another needs (say `libc6`), and would build a base that fails only at run time."""
    lock = await Get(
        Digest, CreateDigest([FileContent("packages.lock.json", request.lock_file.content)])
    )
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(commands.DEBIAN_CHECK_LOCK, flags.LOCK, "packages.lock.json"),
            description=f"Check the Debian package lock of {request.target}",
            input_digest=lock,
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        stderr = result.stderr.decode(errors="replace")
        raise BaseLockError(base_lock_check_failure(request, result.exit_code, stderr))
    return CheckedBaseLock()


def check_base_files(address: Address, files: tuple[str, ...], *, upstream: bool) -> None:
    """A base's own files sit in its directory: the scripts always, the lock only without
    `upstream`."""
    root = address.spec_path
    prefix = f"{root}/" if root else ""
    present = {path[len(prefix) :] for path in files if path.startswith(prefix)}
    expected = EsbBaseSourcesField.script_files if upstream else EsbBaseSourcesField.required_files
    missing = [name for name in expected if name not in present]
    where = f"{root}/" if root else "the build root"
    alias = EsbBaseSourcesField.alias
    if missing:
        raise InvalidFieldException(
            f"The `{alias}` field of the target {address} selects no {' and no '.join(missing)} in "
            f"{where}.\n\nFix: keep {', '.join(f'`{name}`' for name in expected)} in the base's "
            f"directory and in `{alias}`"
            + (
                f" (`{BASE_LOCK_FILE}` is written by `pants esb-lock {address}`)."
                if BASE_LOCK_FILE in missing
                else "."
            )
        )
    if upstream and BASE_LOCK_FILE in present:
        raise InvalidFieldException(
            f"The `{alias}` field of the target {address} selects {where.rstrip('/')}/"
            f"{BASE_LOCK_FILE}, but the base is built on its `{EsbBaseUpstreamField.alias}` image, "
            "so a package lock would be ignored.\n\nFix: delete "
            f"{where.rstrip('/')}/{BASE_LOCK_FILE} (and its `{EsbBasePackagesField.alias}` field), "
            f'or leave it out with `{alias}=["{TRUST_SCRIPT_FILE}", "{ENTRYPOINT_SCRIPT_FILE}"]`.'
        )


@dataclass(frozen=True)
class BaseSources:
    """A base target's own files by name, and its parsed, checked package lock (None for a base
    on an upstream image)."""

    target: EsbBaseImageTarget
    files: FrozenDict[str, FileContent]
    lock: BaseLock | None

    @property
    def is_upstream(self) -> bool:
        return self.target[EsbBaseUpstreamField].value is not None

    def upstream(self, architecture: str) -> UpstreamImageRequest:
        """The pull of the upstream image of `architecture` ("": the base's first platform)."""
        reference = self.target[EsbBaseUpstreamField].value
        assert reference is not None, "a base on an upstream image"
        platforms = self.target.platforms()
        platform = next((p for p in platforms if p.architecture == architecture), platforms[0])
        return UpstreamImageRequest(reference, str(platform), str(self.target.address))


@rule
async def read_base_sources(request: BaseImageRequest) -> BaseSources:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    assert isinstance(target, EsbBaseImageTarget)
    sources = await Get(HydratedSources, HydrateSourcesRequest(target[EsbBaseSourcesField]))
    upstream = target[EsbBaseUpstreamField].value is not None
    check_base_files(request.address, sources.snapshot.files, upstream=upstream)
    files = FrozenDict(
        {
            c.path.rsplit("/", 1)[-1]: c
            for c in await Get(DigestContents, Digest, sources.snapshot.digest)
        }
    )
    if upstream:
        return BaseSources(target, files, None)
    lock_file = files[BASE_LOCK_FILE]
    spec = str(request.address)
    architectures = target.architectures()
    lock = parse_base_lock(
        lock_file.content,
        lock_path=lock_file.path,
        target=spec,
        architecture=request.architecture or architectures[0],
    )
    check_lock_matches_target(
        lock,
        target[EsbBasePackagesField].value or (),
        architectures,
        lock_path=lock_file.path,
        target=spec,
    )
    await Get(CheckedBaseLock, BaseLockCheckRequest(lock_file, spec))
    return BaseSources(target, files, lock)


@dataclass(frozen=True)
class BaseArchitecturesRequest:
    address: Address


@dataclass(frozen=True)
class BaseArchitectures:
    """The architectures a base is built for, and so every image on it, in the order of its
    `platforms`: one for a base on an `upstream` image."""

    architectures: tuple[str, ...]


@rule
async def base_architectures(request: BaseArchitecturesRequest) -> BaseArchitectures:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    assert isinstance(wrapped.target, EsbBaseImageTarget)
    return BaseArchitectures(wrapped.target.architectures())


@rule
async def read_base_platform(request: BaseImageRequest) -> BasePlatform:
    """Read from the lock, or from the pulled upstream image, so that images on the base can
    build their layers in parallel with it."""
    sources = await Get(BaseSources, BaseImageRequest, request)
    if sources.is_upstream:
        return await Get(
            BasePlatform, UpstreamPlatformRequest(sources.upstream(request.architecture))
        )
    assert sources.lock is not None
    return sources.lock.platform


async def _rootfs_request(sources: BaseSources, architecture: str) -> RootfsLayerRequest:
    """The lock, whose `.deb` files the process fetches, to assemble."""
    assert sources.lock is not None
    lock_file = sources.files[BASE_LOCK_FILE]
    spec = str(sources.target.address)
    lock = await Get(Digest, CreateDigest([FileContent("packages.lock.json", lock_file.content)]))
    return RootfsLayerRequest(
        lock,
        lock_file.path,
        spec,
        sources.lock.architecture,
        sources.target[EsbBaseServiceAccountsField].value or (),
        steps.describe(
            steps.ASSEMBLE, f"the Debian root filesystem of {spec}{platform_suffix(architecture)}"
        ),
    )


async def _tools_request(sources: BaseSources) -> FilesLayerRequest:
    scripts = await Get(
        Digest,
        CreateDigest(
            [
                FileContent(name, sources.files[name].content, is_executable=True)
                for name in (TRUST_SCRIPT_FILE, ENTRYPOINT_SCRIPT_FILE)
            ]
        ),
    )
    return FilesLayerRequest(
        "trust-tools",
        scripts,
        "usr/local/bin",
        steps.describe(steps.BUILD, f"trust/tools layer of {sources.target.address}"),
    )


def base_config_json(target: EsbBaseImageTarget) -> str:
    """The base's config over its root file system's (an upstream image's config, if any)."""
    return config_json(
        ConfigChanges(
            cmd=["python3"],
            entrypoint=[ENTRYPOINT],
            env={**BASE_ENVIRONMENT, **(target[EsbImageEnvironmentField].value or FrozenDict())},
            labels=image_labels(target),
            stop_signal=target[EsbBaseStopSignalField].value,
            user=target[EsbImageUserField].value,
        )
    )


@rule(desc="Build a base image", level=LogLevel.DEBUG)
async def build_base_image(
    request: BaseImageRequest, registries: RegistriesSubsystem
) -> BuiltBaseImage:
    sources = await Get(BaseSources, BaseImageRequest, request)
    target = sources.target
    spec = str(request.address)
    created = await image_created(target)
    tools_request = await _tools_request(sources)
    upstream_base: BuiltImage | None = None
    layers: tuple[BuiltLayer, ...]
    if sources.is_upstream:
        upstream = sources.upstream(request.architecture)
        pulled, platform = await MultiGet(
            Get(PulledUpstreamImage, UpstreamImageRequest, upstream),
            Get(BasePlatform, UpstreamPlatformRequest(upstream)),
        )
        accounts = target[EsbBaseServiceAccountsField].value or ()
        accounts_request = AccountsLayerRequest(
            pulled,
            upstream.reference,
            accounts,
            steps.describe(
                steps.BUILD,
                f"service accounts layer of {spec}{platform_suffix(request.architecture)}",
            ),
        )
        if accounts:
            upstream_base, accounts_layer, tools = await MultiGet(
                Get(BuiltImage, PulledUpstreamImage, pulled),
                Get(BuiltLayer, AccountsLayerRequest, accounts_request),
                Get(BuiltLayer, FilesLayerRequest, tools_request),
            )
            layers = (accounts_layer, tools)
        else:
            upstream_base, tools = await MultiGet(
                Get(BuiltImage, PulledUpstreamImage, pulled),
                Get(BuiltLayer, FilesLayerRequest, tools_request),
            )
            layers = (tools,)
    else:
        assert sources.lock is not None
        platform = sources.lock.platform
        rootfs, tools = await MultiGet(
            Get(
                BuiltLayer, RootfsLayerRequest, await _rootfs_request(sources, request.architecture)
            ),
            Get(BuiltLayer, FilesLayerRequest, tools_request),
        )
        layers = (rootfs, tools)
    image = await Get(
        BuiltImage,
        ImageAssemblyRequest(
            description=steps.describe(
                steps.ASSEMBLE, f"the image {spec}{platform_suffix(request.architecture)}"
            ),
            repository=target[EsbImageRepositoryField].image_repository(
                registries.default_repository
            ),
            tags=target[EsbImageTagsField].literal(),
            architecture=platform.architecture,
            config_json=base_config_json(target),
            layers=layers,
            base=upstream_base,
            created=created,
        ),
    )
    return BuiltBaseImage(image, platform)


def rules():
    return collect_rules()
