"""An upstream base image: pulled by digest, read for its platform facts, used as a base layout.

What is in the pull's cache key, and what is not (see docs/upstream-bases.md):

- in it: the reference (whose digest decides the content), the platform, the image tool's code,
  and the `[esb-registries]` settings as written: registry names, `insecure`, mirror URLs, the
  content of CA bundles inside the repository and the path of those outside it, the Docker
  config's path when one is configured, and the credential helpers' search path when set.
- not in it: credentials. The image tool reads them when it runs, from the Docker config
  (by default `~/.docker/config.json` of the user running the build, found through the password
  database because the process runs without `HOME`), so rotating a password or logging in again
  does not re-run a pull, and no secret reaches the local or remote cache.
- the blob cache (`--cache-dir`) is a Pants append-only cache: its content is outside the key
  and survives cache misses, so a re-pull of the same digest downloads nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Optional

from pants.base.glob_match_error_behavior import GlobMatchErrorBehavior
from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.fs import (
    AddPrefix,
    Digest,
    DigestContents,
    DigestSubset,
    PathGlobs,
    RemovePrefix,
)
from pants.engine.process import FallibleProcessResult, Process, ProcessResult
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.util.frozendict import FrozenDict

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import RegistriesSubsystem, RegistrySettings, helper_search_path
from esb.target_types import EsbBaseUpstreamField
from esb.util_rules.image import IMAGE_LAYOUT, BuiltImage
from esb.util_rules.layers import BuiltLayer, layer_request, run_layer_process
from esb.util_rules.platform import BasePlatform
from esb_contract import commands, flags
from esb_contract.messages import NOTE_PREFIX, tool_message

PULLED_LAYOUT = "upstream.oci"
PULLED_METADATA = "upstream.image.json"
PLATFORM_FACTS = "platform.json"
_INVENTORIES = "inventories"
# A Pants named cache (`~/.cache/pants/named_caches/esb_oci_blobs`) of blobs by digest, shared
# by every pull: content-addressed and verified on every use, so it can only ever grow.
BLOB_CACHE_NAME = "esb_oci_blobs"
BLOB_CACHE_PATH = ".esb-oci-blobs"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryConnection:
    """How the image tool reaches registries; nothing in it is secret."""

    registries: tuple[RegistrySettings, ...] = ()
    docker_config: Optional[str] = None
    """None: the tool's default, `~/.docker/config.json` of the user it runs as."""
    credential_helper_path: Optional[str] = None
    """None: the tool's own `PATH`."""


CA_BUNDLE_SETTING = (
    '`ca_bundle = "<PEM file>"` in the `[esb-registries.registries."{registry}"]` section of '
    "pants.toml"
)
"""How a Pants user trusts a registry's CA, for the image tool's message about a certificate
that does not verify (`{registry}` is the tool's placeholder)."""
INSECURE_SETTING = (
    '`insecure = true` in the `[esb-registries.registries."{registry}"]` section of pants.toml'
)
"""How a Pants user allows plain HTTP to a registry, for the image tool's messages."""


def pull_argv(reference: str, platform: str, connection: RegistryConnection) -> tuple[str, ...]:
    """The `pull-image` command line; CA bundles inside the repository are inputs at their
    repository paths, so relative paths stay valid in the sandbox."""
    argv = [
        commands.PULL_IMAGE,
        flags.REFERENCE,
        reference,
        flags.PLATFORM,
        platform,
        flags.OUT_LAYOUT,
        PULLED_LAYOUT,
        flags.OUT_METADATA,
        PULLED_METADATA,
        flags.CACHE_DIR,
        BLOB_CACHE_PATH,
    ]
    return (*argv, *connection_argv(connection, mirrors=True))


def connection_argv(connection: RegistryConnection, *, mirrors: bool) -> list[str]:
    """The image tool's arguments that say how to reach registries: the Docker config, where
    credential helpers are, and each registry's CA bundle, plain HTTP and (for pulls) mirrors;
    and the pants.toml settings its messages name as the fix."""
    argv = [flags.CA_BUNDLE_SETTING, CA_BUNDLE_SETTING, flags.INSECURE_SETTING, INSECURE_SETTING]
    if connection.docker_config:
        argv += [flags.DOCKER_CONFIG, connection.docker_config]
    if connection.credential_helper_path:
        argv += [flags.CREDENTIAL_HELPER_PATH, connection.credential_helper_path]
    for settings in connection.registries:
        if settings.ca_bundle:
            argv += [flags.REGISTRY_CA, f"{settings.registry}={settings.ca_bundle}"]
        if settings.insecure:
            argv += [flags.INSECURE_REGISTRY, settings.registry]
        if mirrors:
            argv += [
                arg
                for mirror in settings.mirrors
                for arg in (flags.MIRROR, f"{settings.registry}={mirror}")
            ]
    return argv


async def connection_inputs(connection: RegistryConnection) -> Digest:
    """The CA bundles inside the repository, at their repository paths, so that the relative
    paths `connection_argv` passes stay valid in the sandbox."""
    repository_ca_bundles = [
        s.ca_bundle
        for s in connection.registries
        if s.ca_bundle and not s.ca_bundle.startswith(("/", "~"))
    ]
    return await Get(
        Digest,
        PathGlobs(
            repository_ca_bundles,
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin="the `ca_bundle` settings of `[esb-registries].registries`",
        ),
    )


class UpstreamPullError(Exception):
    pass


def pull_failure_message(request: UpstreamImageRequest, exit_code: int, stderr: str) -> str:
    """The image tool's own message (it names the reference or blob and the fix), introduced
    by the target and field it came from."""
    return (
        f"Cannot pull the image of the `{EsbBaseUpstreamField.alias}` field of the target "
        f"{request.origin} ({request.reference}, {request.platform}):\n\n"
        + tool_message(exit_code, stderr)
    )


@dataclass(frozen=True)
class UpstreamImageRequest:
    reference: str
    """As the `upstream` field has it; the image tool refuses one without a digest."""
    platform: str
    """`os/architecture[/variant]`."""
    origin: str
    """The base target's address, for step descriptions."""


@dataclass(frozen=True)
class PulledUpstreamImage:
    layout: Digest
    """The OCI layout of the one image, at the digest's root."""
    metadata_json: str
    """Written by `pull-image --out-metadata`: digest, config_digest, repository, tags, layers."""

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_json)

    @property
    def layer_digests(self) -> tuple[str, ...]:
        return tuple(layer["digest"] for layer in self.metadata["layers"])


@rule
async def registry_connection(registries: RegistriesSubsystem) -> RegistryConnection:
    env = await Get(EnvironmentVars, EnvironmentVarsRequest(["DOCKER_CONFIG", "PATH"]))
    return RegistryConnection(
        registries=registries.registries,
        docker_config=registries.docker_config_path(env.get("DOCKER_CONFIG")),
        credential_helper_path=helper_search_path(
            registries.credential_helper_search_path, env.get("PATH")
        ),
    )


@rule
async def pull_upstream_image(
    request: UpstreamImageRequest, connection: RegistryConnection
) -> PulledUpstreamImage:
    process = await Get(
        Process,
        ImageToolRequest(
            argv=pull_argv(request.reference, request.platform, connection),
            description=f"Pull {request.reference} ({request.platform}) for {request.origin}",
            input_digest=await connection_inputs(connection),
            output_files=(PULLED_METADATA,),
            output_directories=(PULLED_LAYOUT,),
            needs_network_trust=True,
            append_only_caches=FrozenDict({BLOB_CACHE_NAME: BLOB_CACHE_PATH}),
        ),
    )
    result = await Get(FallibleProcessResult, Process, process)
    if result.exit_code != 0:
        raise UpstreamPullError(
            pull_failure_message(request, result.exit_code, result.stderr.decode(errors="replace"))
        )
    layout, metadata = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([f"{PULLED_LAYOUT}/**"]))),
        Get(DigestContents, DigestSubset(result.output_digest, PathGlobs([PULLED_METADATA]))),
    )
    return PulledUpstreamImage(
        await Get(Digest, RemovePrefix(layout, PULLED_LAYOUT)), metadata[0].content.decode()
    )


async def _with_layout(layout: Digest) -> Digest:
    """The image tool's inputs: the pulled layout at `PULLED_LAYOUT`."""
    return await Get(Digest, AddPrefix(layout, PULLED_LAYOUT))


@dataclass(frozen=True)
class UpstreamPlatformRequest:
    image: UpstreamImageRequest


@rule
async def read_upstream_platform(request: UpstreamPlatformRequest) -> BasePlatform:
    pulled = await Get(PulledUpstreamImage, UpstreamImageRequest, request.image)
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(
                commands.IMAGE_PLATFORM,
                flags.LAYOUT,
                PULLED_LAYOUT,
                flags.NAME,
                request.image.reference,
                flags.OUT,
                PLATFORM_FACTS,
            ),
            description=f"Read the platform of {request.image.reference}",
            input_digest=await _with_layout(pulled.layout),
            output_files=(PLATFORM_FACTS,),
        ),
    )
    result = await Get(ProcessResult, Process, process)
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith(NOTE_PREFIX):
            # E.g. that venvs on it ship without bytecode; replayed from the cache, so it is
            # said on every build, not only the first.
            logger.warning(f"{request.image.origin}: {line[len(NOTE_PREFIX):]}")
    contents = await Get(DigestContents, Digest, result.output_digest)
    return BasePlatform.from_facts(
        json.loads(contents[0].content),
        where=f"the upstream image {request.image.reference} of {request.image.origin}",
    )


@dataclass(frozen=True)
class AccountsLayerRequest:
    pulled: PulledUpstreamImage
    reference: str
    service_accounts: tuple[str, ...]
    description: str


@rule
async def build_accounts_layer(request: AccountsLayerRequest) -> BuiltLayer:
    return await run_layer_process(
        "accounts",
        layer_request(
            (
                commands.ACCOUNTS_LAYER,
                flags.LAYOUT,
                PULLED_LAYOUT,
                flags.NAME,
                request.reference,
                *(arg for account in request.service_accounts for arg in (flags.ACCOUNT, account)),
            ),
            request.description,
            await _with_layout(request.pulled.layout),
        ),
    )


@rule
async def upstream_as_base(pulled: PulledUpstreamImage) -> BuiltImage:
    """The pulled image in the shape of a built one, to assemble our base on: its layout, its
    metadata, and its layers' package records (so that the base's inventory lists them)."""
    repository = pulled.metadata["repository"]
    process = await Get(
        Process,
        ImageToolRequest(
            argv=(
                commands.LAYER_INVENTORIES,
                flags.LAYOUT,
                PULLED_LAYOUT,
                flags.OUT_DIR,
                _INVENTORIES,
            ),
            description=f"List the packages of the layers of {repository}",
            input_digest=await _with_layout(pulled.layout),
            output_directories=(_INVENTORIES,),
        ),
    )
    result = await Get(ProcessResult, Process, process)
    directories = [f"{_INVENTORIES}/{index:03d}" for index in range(len(pulled.layer_digests))]
    subsets = await MultiGet(
        Get(Digest, DigestSubset(result.output_digest, PathGlobs([f"{directory}/**"])))
        for directory in directories
    )
    inventories = await MultiGet(
        Get(Digest, RemovePrefix(subset, directory))
        for subset, directory in zip(subsets, directories)
    )
    image = await Get(Digest, AddPrefix(pulled.layout, IMAGE_LAYOUT))
    return BuiltImage(image, pulled.metadata_json, tuple(inventories))


def rules():
    return collect_rules()
