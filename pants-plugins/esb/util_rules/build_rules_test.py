"""Rule tests of the image builds, `assemble_image`, `build_base_image` and `build_service_image`,
run by the engine with the image tool replaced at the process boundary.

`fake_image_tool` stands in for the image tool's `Process`: it records each request (the test
reads what reached the tool from its input digest, e.g. the spec `assemble` reads), and runs a
process that leaves in its sandbox the files the real command writes, small and valid per the
contract; or, for a command a test makes fail, one that exits 1 with the tool's message.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import pytest
from pants.engine.addresses import Address
from pants.engine.fs import CreateDigest, Digest, DigestContents, FileContent
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.process import Process
from pants.engine.rules import Get, QueryRule, rule
from pants.testutil.rule_runner import RuleRunner

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.registries import RegistriesSubsystem
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import (
    base,
    created,
    dependencies,
    image,
    layers,
    service,
    upstream,
    workspace,
)
from esb.util_rules.base import (
    BASE_ENVIRONMENT,
    ENTRYPOINT,
    BaseArchitectures,
    BaseArchitecturesRequest,
    BaseImageRequest,
    BuiltBaseImage,
)
from esb.util_rules.image import (
    IMAGE_INVENTORY,
    IMAGE_METADATA,
    BuiltImage,
    ImageAssemblyRequest,
    ImageIndexRequest,
    blob_path,
    config_json,
)
from esb.util_rules.layers import LAYER_BLOB, LAYER_DESCRIPTOR, LAYER_INVENTORY, BuiltLayer
from esb.util_rules.lock_testutil import UV_WHEEL, debian_lock
from esb.util_rules.platform import BasePlatform
from esb.util_rules.service import ProjectLayerError, ServiceImageRequest
from esb.util_rules.upstream import PulledUpstreamImage, UpstreamImageRequest
from esb_contract.base_lock import PackageLocks
from esb_contract.commands import read_argv
from esb_contract.image_spec import ConfigChanges, ImageSpec, Platform
from esb_contract.limits import MERGED_LAYER_BELOW_BYTES
from esb_contract.lock_export import LockedDistribution, LockExport
from esb_contract.uv_project import RELOCK_PLACEHOLDER

# -- the fake image tool ---------------------------------------------------------------------

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class FakeTool:
    """What the fake tool was asked (every request, in order), and the subcommands it fails,
    each with the message the real tool writes to stderr."""

    requests: list[ImageToolRequest]
    failures: dict[str, str]
    large: set[str]
    """Descriptions of the layer commands whose blobs are as large as a layer the image lists
    apart (the others' are a few bytes)."""

    def runs(self, command: str) -> list[ImageToolRequest]:
        return [request for request in self.requests if request.full_argv[0] == command]


TOOL = FakeTool([], {}, set())


def sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _option(argv: tuple[str, ...], name: str) -> str:
    """The value of a flag given once, as the tool reads the argv."""
    return read_argv(argv).value(name)


def _options(argv: tuple[str, ...], name: str) -> list[str]:
    """The values of a repeated flag, in order, as the tool reads the argv."""
    return list(read_argv(argv).get(name))


def _layer_outputs(request: ImageToolRequest) -> dict[str, bytes]:
    """A layer command's three files; the blob says which command, for which step, built it."""
    blob = f"{request.full_argv[0]}: {request.description}".encode()
    if request.description in TOOL.large:
        blob = blob.ljust(MERGED_LAYER_BELOW_BYTES, b" ")
    descriptor = {
        "digest": sha256(blob),
        "diff_id": sha256(blob + b"(uncompressed)"),
        "size": len(blob),
        "media_type": LAYER_MEDIA_TYPE,
    }
    inventory = {"layer": request.description, "packages": []}
    return {
        LAYER_BLOB: blob,
        LAYER_DESCRIPTOR: json.dumps(descriptor).encode(),
        LAYER_INVENTORY: json.dumps(inventory).encode(),
    }


def _assemble_outputs(argv: tuple[str, ...], inputs: Mapping[str, bytes]) -> dict[str, bytes]:
    spec_bytes = inputs[_option(argv, "--spec")]
    spec = ImageSpec.from_json(json.loads(spec_bytes), where="spec.json")
    layout = _option(argv, "--out-layout")
    inherited = []
    if spec.base:
        # The fake's layouts keep their metadata in `index.json`.
        inherited = json.loads(inputs[f"{spec.base.layout}/index.json"])["layers"]
    own = [json.loads(inputs[layer.descriptor]) for layer in spec.layers]
    records = [json.loads(inputs[path]) for path in spec.layer_inventories or ()]
    outputs = {}
    if spec.app:
        # The app layer's blob names the files it was written from; the assembly writes it.
        files = sorted(p for p in inputs if p.startswith(f"{spec.app.directory}/"))
        blob = f"the app layer of {' '.join(files)}".encode()
        own.append({"digest": sha256(blob), "size": len(blob)})
        outputs[f"{layout}/blobs/sha256/{sha256(blob).partition(':')[2]}"] = blob
        outputs[_option(argv, "--out-app-inventory")] = b'{"layer": "app"}'
        records.append({"layer": "app"})
    metadata = {
        "digest": sha256(b"manifest of " + spec_bytes),
        "config_digest": sha256(b"config of " + spec_bytes),
        "repository": spec.repository,
        "tags": list(spec.tags),
        "layers": [*inherited, *({"digest": d["digest"], "size": d["size"]} for d in own)],
    }
    encoded = json.dumps(metadata).encode()
    return {
        **outputs,
        _option(argv, "--out-metadata"): encoded,
        _option(argv, "--out-inventory"): json.dumps({"layers": records}).encode(),
        f"{layout}/index.json": encoded,
        f"{layout}/oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
    }


def _tool_outputs(request: ImageToolRequest, inputs: Mapping[str, bytes]) -> dict[str, bytes]:
    argv = request.full_argv
    command = argv[0]
    if LAYER_BLOB in request.output_files:
        return _layer_outputs(request)
    if command == "assemble":
        return _assemble_outputs(argv, inputs)
    if command == "image-platform":
        # The fake's pulled layouts say in `index.json` which platform was pulled.
        pulled = json.loads(inputs[f"{_option(argv, '--layout')}/index.json"])["platform"]
        architecture = Platform.parse(pulled).architecture
        facts = {"architecture": architecture, "glibc_version": "2.36", "python_version": "3.12.8"}
        facts["interpreter"] = "/usr/local/bin/python3.12"
        return {_option(argv, "--out"): json.dumps(facts).encode()}
    if command == "layer-inventories":
        layout = _option(argv, "--layout")
        count = len(json.loads(inputs[f"{layout}/index.json"])["layers"])
        out = _option(argv, "--out-dir")
        return {
            f"{out}/{i:03d}/{LAYER_INVENTORY}": json.dumps({"layer": f"upstream {i}"}).encode()
            for i in range(count)
        }
    if command == "export-lock":
        return {_option(argv, "--out"): json.dumps(EXPORT.to_json()).encode()}
    if command == "base-libraries":
        return {_option(argv, "--out"): b'{"libraries": []}'}
    if command == "image-index":
        digests = [json.loads(inputs[path])["digest"] for path in _options(argv, "--metadata")]
        index = {"digest": sha256(" ".join(digests).encode()), "repository": "x", "tags": []}
        index["layers"] = []
        layout = _option(argv, "--out-layout")
        return {
            _option(argv, "--out-metadata"): json.dumps(index).encode(),
            _option(argv, "--out-inventory"): b"{}",
            f"{layout}/index.json": json.dumps(index).encode(),
        }
    if command in ("debian-check-lock", "check-native"):
        return {}
    raise AssertionError(f"The fake image tool has no command {command!r}: {argv}")


@rule
async def fake_image_tool(request: ImageToolRequest) -> Process:
    TOOL.requests.append(request)
    common: dict[str, Any] = dict(
        description=request.description,
        output_files=request.output_files,
        output_directories=request.output_directories,
    )
    failure = TOOL.failures.get(request.full_argv[0])
    if failure is not None:
        script = 'printf "%s\\n" "$TOOL_STDERR" >&2; exit 1'
        return Process(("/bin/sh", "-c", script), env={"TOOL_STDERR": failure}, **common)
    contents = await Get(DigestContents, Digest, request.input_digest)
    outputs = _tool_outputs(request, {file.path: file.content for file in contents})
    # The outputs are in the sandbox before the process runs; the engine captures them after.
    staged = await Get(Digest, CreateDigest(FileContent(p, c) for p, c in outputs.items()))
    return Process(("/bin/sh", "-c", "exit 0"), input_digest=staged, **common)


@pytest.fixture(autouse=True)
def tool() -> Iterator[FakeTool]:
    TOOL.requests.clear()
    TOOL.failures.clear()
    TOOL.large.clear()
    yield TOOL
    TOOL.requests.clear()
    TOOL.failures.clear()
    TOOL.large.clear()


def files(rule_runner: RuleRunner, digest: Digest) -> dict[str, bytes]:
    return {f.path: f.content for f in rule_runner.request(DigestContents, [digest])}


def digest_of(rule_runner: RuleRunner, contents: Mapping[str, bytes]) -> Digest:
    return rule_runner.request(
        Digest, [CreateDigest(FileContent(p, c) for p, c in contents.items())]
    )


def the_spec(rule_runner: RuleRunner, request: ImageToolRequest) -> tuple[ImageSpec, dict]:
    """The spec an `assemble` run read, and every file it was given."""
    return ImageSpec.from_json(spec_json(rule_runner, request), where="spec.json"), files(
        rule_runner, request.input_digest
    )


def spec_json(rule_runner: RuleRunner, request: ImageToolRequest) -> dict[str, Any]:
    """The spec an `assemble` run read, as JSON."""
    return json.loads(
        files(rule_runner, request.input_digest)[_option(request.full_argv, "--spec")]
    )


def error_message(error: pytest.ExceptionInfo[ExecutionError]) -> str:
    (wrapped,) = error.value.wrapped_exceptions
    return str(wrapped)


# -- assemble_image --------------------------------------------------------------------------


@pytest.fixture
def image_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *image.rules(),
            fake_image_tool,
            QueryRule(BuiltImage, [ImageAssemblyRequest]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(Digest, [CreateDigest]),
        ]
    )


def fake_layer(rule_runner: RuleRunner, name: str, contents: str = "") -> BuiltLayer:
    blob = f"the {name} layer".encode()
    descriptor = {"digest": sha256(blob), "diff_id": sha256(blob), "size": len(blob)}
    outputs = {
        LAYER_BLOB: blob,
        LAYER_DESCRIPTOR: json.dumps({**descriptor, "media_type": LAYER_MEDIA_TYPE}).encode(),
        LAYER_INVENTORY: json.dumps({"layer": name}).encode(),
    }
    return BuiltLayer(name, digest_of(rule_runner, outputs), contents)


def assembly(
    layers: tuple[BuiltLayer, ...], base: BuiltImage | None = None, **changes: Any
) -> ImageAssemblyRequest:
    return ImageAssemblyRequest(
        description="Assemble the image services/api:api",
        repository="esb/api",
        tags=("latest", "1.0"),
        architecture="arm64",
        config_json=config_json(ConfigChanges(**changes)),
        layers=layers,
        base=base,
    )


def test_assembly_gives_the_tool_each_layers_descriptor_and_records_in_order(
    image_runner: RuleRunner, tool: FakeTool
) -> None:
    rootfs = fake_layer(image_runner, "rootfs")
    app = fake_layer(image_runner, "app", "esb-api 1.0")
    changes: dict[str, Any] = dict(
        cmd=["python", "-m", "api"], env={"A": "1"}, exposed_ports=["8080/tcp"]
    )
    built = image_runner.request(BuiltImage, [assembly((rootfs, app), **changes)])

    (run,) = tool.runs("assemble")
    spec, inputs = the_spec(image_runner, run)
    assert spec.repository == "esb/api" and list(spec.tags) == ["latest", "1.0"]
    assert spec.base is None and spec.platform == Platform("arm64")
    assert spec.config == ConfigChanges(**changes)
    assert [layer.created_by for layer in spec.layers] == [
        "esb: rootfs layer",
        "esb: app layer (esb-api 1.0)",
    ]
    for layer, given in zip((rootfs, app), spec.layers):
        assert inputs[given.descriptor] == files(image_runner, layer.digest)[LAYER_DESCRIPTOR]
    assert [json.loads(inputs[path]) for path in spec.layer_inventories or ()] == [
        {"layer": "rootfs"},
        {"layer": "app"},
    ]
    # The tool reads descriptors, not the layers' megabytes.
    assert not any(path.endswith(LAYER_BLOB) for path in inputs)

    # What comes back: the tool's metadata, and a layout holding every layer's blob.
    output = files(image_runner, built.digest)
    assert built.metadata == json.loads(output[IMAGE_METADATA])
    assert built.metadata["repository"] == "esb/api"
    assert built.image_digest == json.loads(output[IMAGE_METADATA])["digest"]
    assert [layer["digest"] for layer in built.metadata["layers"]] == [
        sha256(b"the rootfs layer"),
        sha256(b"the app layer"),
    ]
    for path, blob in zip(built.layer_blob_paths, (b"the rootfs layer", b"the app layer")):
        assert output[path] == blob
    assert json.loads(output[IMAGE_INVENTORY])["layers"] == [{"layer": "rootfs"}, {"layer": "app"}]
    assert [files(image_runner, d) for d in built.layer_inventories] == [
        {LAYER_INVENTORY: b'{"layer": "rootfs"}'},
        {LAYER_INVENTORY: b'{"layer": "app"}'},
    ]


def test_an_image_on_a_base_inherits_its_layout_its_blobs_and_its_records(
    image_runner: RuleRunner, tool: FakeTool
) -> None:
    base_image = image_runner.request(BuiltImage, [assembly((fake_layer(image_runner, "rootfs"),))])
    tool.requests.clear()
    built = image_runner.request(
        BuiltImage, [assembly((fake_layer(image_runner, "app"),), base=base_image, user="esb")]
    )

    (run,) = tool.runs("assemble")
    spec, inputs = the_spec(image_runner, run)
    # The base's platform is the image's: the spec names the base's layout, not a platform.
    assert spec.base is not None and spec.platform is None
    assert json.loads(inputs[f"{spec.base.layout}/index.json"]) == base_image.metadata
    # Without the base's layer blobs: the tool reads its index, manifest and config only.
    assert not any(path.startswith(f"{spec.base.layout}/blobs/") for path in inputs)
    assert [json.loads(inputs[path]) for path in spec.layer_inventories or ()] == [
        {"layer": "rootfs"},
        {"layer": "app"},
    ]
    assert spec.config == ConfigChanges(user="esb")

    output = files(image_runner, built.digest)
    assert [layer["digest"] for layer in built.metadata["layers"]] == [
        sha256(b"the rootfs layer"),
        sha256(b"the app layer"),
    ]
    assert output[blob_path(sha256(b"the rootfs layer")[7:])] == b"the rootfs layer"
    assert output[blob_path(sha256(b"the app layer")[7:])] == b"the app layer"
    assert len(built.layer_inventories) == 2
    assert built.layer_inventories[0] == base_image.layer_inventories[0]
    assert json.loads(output[IMAGE_INVENTORY])["layers"] == [{"layer": "rootfs"}, {"layer": "app"}]


def test_a_refused_assembly_fails_with_the_tools_message_naming_the_target(
    image_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.failures["assemble"] = (
        "The `user` field is 'nosuchuser', but no layer adds that account.\n"
        "\nFix: add it to `service_accounts` of the base."
    )
    with pytest.raises(ExecutionError) as error:
        image_runner.request(
            BuiltImage, [assembly((fake_layer(image_runner, "app"),), user="nosuchuser")]
        )
    assert error_message(error) == (
        "Assemble the image services/api:api failed:\n\nThe `user` field is 'nosuchuser', but "
        "no layer adds that account.\n\nFix: add it to `service_accounts` of the base."
    )


# -- build_base_image ------------------------------------------------------------------------

DEBIAN_BASE = Address("base", target_name="base")
UPSTREAM_BASE = Address("upstream", target_name="upstream")
UPSTREAM = "python:3.12-slim-bookworm@sha256:" + "cd" * 32
LOCK = PackageLocks((debian_lock("amd64"),))
ARM64_LOCK = PackageLocks((debian_lock("arm64"),))
SCRIPTS = {"ensure_ca_trust.sh": "#!/bin/sh\n# trust\n", "entrypoint.sh": '#!/bin/sh\nexec "$@"\n'}


PULLED_METADATA = {
    "digest": "sha256:" + "cd" * 32,
    "config_digest": "sha256:" + "ce" * 32,
    "repository": "python",
    "tags": ["3.12-slim-bookworm"],
    "layers": [
        {"digest": sha256(b"upstream 0"), "size": 10},
        {"digest": sha256(b"upstream 1"), "size": 10},
    ],
}


@rule
async def fake_pull_upstream_image(request: UpstreamImageRequest) -> PulledUpstreamImage:
    """The pulled image: a layout whose layers are the fake's (its metadata in `index.json`,
    with the platform pulled)."""
    layout = {
        "index.json": json.dumps({**PULLED_METADATA, "platform": request.platform}).encode(),
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        **{f"blobs/sha256/{sha256(blob)[7:]}": blob for blob in (b"upstream 0", b"upstream 1")},
    }
    digest = await Get(Digest, CreateDigest(FileContent(p, c) for p, c in layout.items()))
    return PulledUpstreamImage(digest, json.dumps(PULLED_METADATA))


# The base's rules, with the image tool, the `.deb` downloads and the upstream pull faked.
BASE_RULES = (
    base.build_base_image,
    base.read_base_sources,
    base.check_base_lock,
    base.base_architectures,
    base.build_rootfs_layer,
    upstream.read_upstream_platform,
    upstream.build_accounts_layer,
    upstream.upstream_as_base,
    *image.rules(),
    *created.rules(),
    *RegistriesSubsystem.rules(),
    fake_image_tool,
    fake_pull_upstream_image,
    QueryRule(BuiltBaseImage, [BaseImageRequest]),
    QueryRule(BaseArchitectures, [BaseArchitecturesRequest]),
    QueryRule(BuiltImage, [ImageIndexRequest]),
    QueryRule(DigestContents, [Digest]),
    QueryRule(Digest, [CreateDigest]),
)


@pytest.fixture
def base_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[*BASE_RULES, layers.build_files_layer],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget],
    )
    runner.write_files(
        {
            "base/BUILD": (
                'esb_base_image(name="base", repository="esb/base", image_tags=["1.0"], '
                'packages=["python3"], service_accounts=["api:10002", "esb:10001"], user="api", '
                'environment={"PATH": "/opt/bin:/usr/bin", "TZ": "UTC"}, '
                'image_labels={"org.example.team": "core"}, stop_signal="SIGTERM")\n'
                'esb_base_image(name="plain", packages=["python3"])\n'
                'esb_base_image(name="stale", packages=["python3", "curl"])\n'
            ),
            "base/packages.lock.json": LOCK.to_json(),
            **{f"base/{name}": content for name, content in SCRIPTS.items()},
            "upstream/BUILD": (
                f'esb_base_image(name="upstream", upstream="{UPSTREAM}", '
                'upstream_platform="linux/arm64", service_accounts=["api:10002"])\n'
                f'esb_base_image(name="bare", upstream="{UPSTREAM}", '
                'upstream_platform="linux/arm64", service_accounts=[])\n'
                f'esb_base_image(name="both", upstream="{UPSTREAM}", '
                'platforms=["linux/amd64", "linux/arm64"])\n'
            ),
            **{f"upstream/{name}": content for name, content in SCRIPTS.items()},
            "arm/BUILD": (
                'esb_base_image(name="arm", packages=["python3"], platforms=["linux/arm64"])\n'
                'esb_base_image(name="both", packages=["python3"], '
                'platforms=["linux/amd64", "linux/arm64"])\n'
            ),
            "arm/packages.lock.json": ARM64_LOCK.to_json(),
            **{f"arm/{name}": content for name, content in SCRIPTS.items()},
        }
    )
    return runner


def layer_descriptor_of(run: ImageToolRequest) -> bytes:
    """The descriptor the layer command `run` wrote (the fake's outputs follow from its request)."""
    return _layer_outputs(run)[LAYER_DESCRIPTOR]


def test_a_debian_base_is_its_locked_packages_then_its_scripts_with_its_fields_config(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    built = base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])

    # The lock is checked, then builds the root filesystem, with the service accounts: the
    # process fetches the `.deb` files the lock pins into its cache, so that nothing is
    # downloaded when its result is cached.
    (check,) = tool.runs("debian-check-lock")
    assert files(base_runner, check.input_digest)["packages.lock.json"] == LOCK.to_json().encode()
    (rootfs,) = tool.runs("debian-rootfs")
    assert files(base_runner, rootfs.input_digest) == {
        "packages.lock.json": LOCK.to_json().encode()
    }
    assert _option(rootfs.full_argv, "--debs") == ".cache/esb-debs"
    assert dict(rootfs.append_only_caches) == {"esb_debs": ".cache/esb-debs"}
    assert (
        _option(rootfs.full_argv, "--lock-path"),
        _option(rootfs.full_argv, "--lock-target"),
    ) == (
        "base/packages.lock.json",
        "base:base",
    )
    assert _options(rootfs.full_argv, "--account") == ["api:10002", "esb:10001"]
    assert _option(rootfs.full_argv, "--architecture") == "amd64"
    # The scripts, executable, under the prefix the tools layer puts them at.
    (tools,) = tool.runs("layer-from-dir")
    scripts = base_runner.request(DigestContents, [tools.input_digest])
    assert {(f.path, f.content.decode(), f.is_executable) for f in scripts} == {
        (f"root/{name}", content, True) for name, content in SCRIPTS.items()
    }
    assert _option(tools.full_argv, "--prefix") == "usr/local/bin"

    (run,) = tool.runs("assemble")
    spec, inputs = the_spec(base_runner, run)
    assert spec.base is None and spec.platform == Platform("amd64")
    assert spec.repository == "esb/base" and list(spec.tags) == ["1.0"]
    assert [inputs[layer.descriptor] for layer in spec.layers] == [
        layer_descriptor_of(rootfs),
        layer_descriptor_of(tools),
    ]
    assert [layer.created_by for layer in spec.layers] == [
        "esb: rootfs layer",
        "esb: trust-tools layer",
    ]
    assert spec.config == ConfigChanges(
        cmd=["python3"],
        entrypoint=[ENTRYPOINT],
        # The target's variables over the defaults, key by key.
        env={**BASE_ENVIRONMENT, "PATH": "/opt/bin:/usr/bin", "TZ": "UTC"},
        labels={"org.example.team": "core"},
        user="api",
        stop_signal="SIGTERM",
    )

    # What comes back: the platform the lock records, and the image the tool assembled.
    assert built.platform == BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11")
    output = files(base_runner, built.image.digest)
    assert built.image.metadata == json.loads(output[IMAGE_METADATA])
    descriptors = [json.loads(inputs[layer.descriptor]) for layer in spec.layers]
    assert built.image.metadata["layers"] == [
        {"digest": d["digest"], "size": d["size"]} for d in descriptors
    ]
    assert len(built.image.layer_inventories) == 2


def test_a_base_without_fields_gets_the_default_config(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    base_runner.request(BuiltBaseImage, [BaseImageRequest(Address("base", target_name="plain"))])
    (run,) = tool.runs("assemble")
    spec, _ = the_spec(base_runner, run)
    assert spec.config == ConfigChanges(
        cmd=["python3"], entrypoint=[ENTRYPOINT], env=dict(BASE_ENVIRONMENT), stop_signal="SIGINT"
    )
    # Dated the epoch by the tool: the spec, and so the step's cache key, holds no time.
    assert "created" not in spec_json(base_runner, run)
    # The default service account.
    (rootfs,) = tool.runs("debian-rootfs")
    assert _options(rootfs.full_argv, "--account") == ["esb:10001"]


@pytest.mark.parametrize("accounts", [True, False])
def test_an_upstream_base_is_built_on_the_pulled_image(
    base_runner: RuleRunner, tool: FakeTool, accounts: bool
) -> None:
    address = UPSTREAM_BASE if accounts else Address("upstream", target_name="bare")
    built = base_runner.request(BuiltBaseImage, [BaseImageRequest(address)])

    assert not tool.runs("debian-check-lock") and not tool.runs("debian-rootfs")
    (run,) = tool.runs("assemble")
    spec, inputs = the_spec(base_runner, run)
    # On the pulled image's layout, whose platform is the image's.
    assert spec.base is not None and spec.platform is None
    pulled = json.loads(inputs[f"{spec.base.layout}/index.json"])
    assert pulled == {**PULLED_METADATA, "platform": "linux/arm64"}
    (tools,) = tool.runs("layer-from-dir")
    own = [tools]
    if accounts:
        (accounts_run,) = tool.runs("accounts-layer")
        assert _options(accounts_run.full_argv, "--account") == ["api:10002"]
        own = [accounts_run, tools]
    else:
        assert not tool.runs("accounts-layer")
    assert [inputs[layer.descriptor] for layer in spec.layers] == [
        layer_descriptor_of(r) for r in own
    ]
    # Every layer's records, the pulled image's first.
    assert [json.loads(inputs[p])["layer"] for p in spec.layer_inventories or ()] == [
        "upstream 0",
        "upstream 1",
        *(r.description for r in own),
    ]

    # The platform read from the pulled image; its layers' blobs are the image's.
    assert built.platform == BasePlatform("3.12.8", "2.36", "arm64", "/usr/local/bin/python3.12")
    output = files(base_runner, built.image.digest)
    assert output[blob_path(sha256(b"upstream 0")[7:])] == b"upstream 0"
    assert [layer["digest"] for layer in built.image.metadata["layers"]][:2] == [
        sha256(b"upstream 0"),
        sha256(b"upstream 1"),
    ]
    assert len(built.image.layer_inventories) == 2 + len(own)


def built_for_amd64_and_arm64(base_runner: RuleRunner, address: Address) -> list[BuiltBaseImage]:
    """The base's builds for each of its two platforms, each checked to be of its platform."""
    architectures = base_runner.request(BaseArchitectures, [BaseArchitecturesRequest(address)])
    assert architectures.architectures == ("amd64", "arm64")
    bases = [
        base_runner.request(BuiltBaseImage, [BaseImageRequest(address, architecture)])
        for architecture in architectures.architectures
    ]
    assert [built.platform.architecture for built in bases] == ["amd64", "arm64"]
    return bases


def test_an_upstream_base_of_two_platforms_pulls_and_builds_each(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    both = Address("upstream", target_name="both")
    # Each platform's image of the upstream index, read for its own platform.
    built_for_amd64_and_arm64(base_runner, both)
    assemblies = tool.runs("assemble")
    pulled = [
        json.loads(inputs[f"{spec.base.layout}/index.json"])["platform"]
        for spec, inputs in (the_spec(base_runner, run) for run in assemblies)
        if spec.base is not None
    ]
    assert pulled == ["linux/amd64", "linux/arm64"]
    # The accounts layer is each platform's, from that platform's /etc/passwd.
    assert [run.description for run in tool.runs("accounts-layer")] == [
        f"Build the service accounts layer of upstream:both for {a}" for a in ("amd64", "arm64")
    ]


def test_a_stale_lock_is_refused_before_anything_is_built(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    with pytest.raises(ExecutionError) as error:
        stale = Address("base", target_name="stale")
        base_runner.request(BuiltBaseImage, [BaseImageRequest(stale)])
    assert error_message(error) == (
        "base/packages.lock.json is stale: the `packages` field of base:stale adds curl compared "
        "with the lock.\n\nFix: run `pants esb-lock base:stale` and commit base/packages.lock.json."
    )
    assert not tool.requests


def test_an_arm64_base_is_its_arm64_packages(base_runner: RuleRunner, tool: FakeTool) -> None:
    arm = Address("arm", target_name="arm")
    built = base_runner.request(BuiltBaseImage, [BaseImageRequest(arm)])
    assert built.platform.architecture == "arm64"
    assert built.platform.uv_python_platform == "aarch64-manylinux_2_36"
    (rootfs,) = tool.runs("debian-rootfs")
    assert _option(rootfs.full_argv, "--architecture") == "arm64"
    (assemble,) = tool.runs("assemble")
    spec = ImageSpec.from_json(
        json.loads(
            files(base_runner, assemble.input_digest)[_option(assemble.full_argv, "--spec")]
        ),
        where="spec.json",
    )
    assert spec.platform is not None and spec.platform.architecture == "arm64"


def test_a_lock_of_other_platforms_than_the_field_is_stale(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    base_runner.write_files({"arm/packages.lock.json": LOCK.to_json()})
    with pytest.raises(ExecutionError) as error:
        base_runner.request(BuiltBaseImage, [BaseImageRequest(Address("arm", target_name="arm"))])
    assert error_message(error) == (
        "arm/packages.lock.json (the package lock of arm:arm) is stale: it locks packages for "
        "amd64 and not for arm64, which the `platforms` field asks for.\n\n"
        "Fix: run `pants esb-lock arm:arm` and commit arm/packages.lock.json."
    )
    assert not tool.requests


def test_a_base_of_two_platforms_builds_each_and_indexes_them(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    both = Address("arm", target_name="both")
    base_runner.write_files(
        {
            "arm/packages.lock.json": PackageLocks(
                (debian_lock("amd64"), debian_lock("arm64"))
            ).to_json()
        }
    )
    bases = built_for_amd64_and_arm64(base_runner, both)
    rootfs = tool.runs("debian-rootfs")
    assert [_option(run.full_argv, "--architecture") for run in rootfs] == ["amd64", "arm64"]
    # Each platform's steps say which platform they build.
    assert [run.description for run in rootfs] == [
        f"Assemble the Debian root filesystem of arm:both for {a}" for a in ("amd64", "arm64")
    ]
    # The scripts are the same on every platform: one layer, built once.
    assert len(tool.runs("layer-from-dir")) == 1

    index = base_runner.request(
        BuiltImage, [ImageIndexRequest("Assemble the index", tuple(b.image for b in bases))]
    )
    (run,) = tool.runs("image-index")
    metadata = [
        json.loads(files(base_runner, run.input_digest)[path])
        for path in _options(run.full_argv, "--metadata")
    ]
    assert [m["digest"] for m in metadata] == [b.image.image_digest for b in bases]
    # The index's layout holds every platform's layers, by reference.
    layout = files(base_runner, index.digest)
    for built in bases:
        for path in built.image.layer_blob_paths:
            assert path in layout, path


def test_a_lock_the_tool_refuses_names_the_lock_the_target_and_the_fix(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.failures["debian-check-lock"] = (
        "python3 depends on libpython3.11-stdlib, which the lock " "does not hold"
    )
    with pytest.raises(ExecutionError) as error:
        base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])
    message = error_message(error)
    assert message.startswith(
        "base/packages.lock.json (the package lock of base:base) cannot be built:\n"
        "python3 depends on libpython3.11-stdlib, which the lock does not hold"
    )
    assert "Fix: run `pants esb-lock base:base` and commit base/packages.lock.json" in message
    assert not tool.runs("debian-rootfs") and not tool.runs("assemble")


def test_a_deb_the_tool_cannot_fetch_fails_the_base_with_the_tools_message(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.failures["debian-rootfs"] = (
        "base/packages.lock.json (the package lock of base:base) pins libc6 2.36-9 (amd64) at "
        "https://deb.example/libc6.deb, but it cannot be downloaded"
    )
    with pytest.raises(ExecutionError) as error:
        base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])
    assert error_message(error) == tool.failures["debian-rootfs"]
    assert "RootfsError" in str(error.value)
    assert not tool.runs("assemble")


def test_an_upstream_base_with_a_lock_is_refused_with_the_file_to_delete(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    base_runner.write_files({"upstream/packages.lock.json": LOCK.to_json()})
    with pytest.raises(ExecutionError) as error:
        base_runner.request(BuiltBaseImage, [BaseImageRequest(UPSTREAM_BASE)])
    message = error_message(error)
    assert message.startswith(
        "The `sources` field of the target upstream:upstream selects upstream/packages.lock.json,"
        " but the base is built on its `upstream` image"
    )
    assert "Fix: delete upstream/packages.lock.json" in message
    assert not tool.runs("assemble")


# -- build_service_image ---------------------------------------------------------------------

API = Address("services/api", target_name="api")
_HASH = "    --hash=sha256:" + "ef" * 32 + "\n"
# What `export-lock` reports the lock installs (the fake tool writes it as `lock-export.json`).
EXPORT = LockExport(
    (
        LockedDistribution("starlette", f"starlette==1.2.0 \\\n{_HASH}"),
        LockedDistribution("anyio", f"anyio==4.16.0 \\\n{_HASH}"),
    )
)


@rule
async def fake_uv_wheel(request: UvWheelRequest) -> UvWheel:
    return UV_WHEEL


@pytest.fixture
def service_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *service.rules(),
            *workspace.rules(),
            *dependencies.rules(),
            *layers.rules(),
            *BASE_RULES,
            base.read_base_platform,
            fake_uv_wheel,
            QueryRule(BuiltImage, [ServiceImageRequest]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget],
    )
    runner.write_files(
        {
            "base/BUILD": (
                'esb_base_image(name="base", repository="esb/base", packages=["python3"])\n'
            ),
            "base/packages.lock.json": LOCK.to_json(),
            **{f"base/{name}": content for name, content in SCRIPTS.items()},
            "services/api/BUILD": (
                'esb_service_image(name="api", base="//base:base", repository="esb/api", '
                'image_tags=["latest", "1.0"], command=["python", "-m", "api"], '
                'environment={"PORT": "8080"}, ports=["8080", "9090/udp"], volumes=["/data"], '
                'workdir="/srv", user="esb", stop_signal="SIGTERM", '
                'image_labels={"org.example.team": "api"})\n'
            ),
            "services/api/pyproject.toml": (
                '[project]\nname = "esb-api"\nversion = "0.1.0"\n'
                'dependencies = ["starlette"]\n\n[tool.uv]\npackage = false\n'
            ),
            "services/api/uv.lock": 'version = 1\nrevision = 5\nrequires-python = ">=3.11"\n',
            "services/api/src/api/__init__.py": "",
            "services/api/src/api/__main__.py": "print('api')\n",
        }
    )
    return runner


def layer_runs(tool: FakeTool) -> dict[str, ImageToolRequest]:
    """The layer commands run, by description."""
    return {r.description: r for r in tool.requests if LAYER_BLOB in r.output_files}


def service_assemblies(tool: FakeTool) -> list[ImageToolRequest]:
    """The assemblies of the service's image (the base's is built alongside the layers)."""
    return [r for r in tool.runs("assemble") if r.description == f"Assemble the image {API}"]


def test_a_service_image_is_its_base_then_uv_its_locked_venv_and_its_files(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.large.add("Install starlette==1.2.0 into a layer")
    built = service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    base_image = service_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)]).image

    (run,) = service_assemblies(tool)
    spec, inputs = the_spec(service_runner, run)
    assert spec.repository == "esb/api" and list(spec.tags) == ["latest", "1.0"]
    assert "created" not in spec_json(service_runner, run)
    # On the base the `base` field names, built by its own rule: its layout, its platform.
    assert spec.base is not None and spec.platform is None
    assert json.loads(inputs[f"{spec.base.layout}/index.json"]) == base_image.metadata
    # uv, the large distributions' layers, one layer merged from the small ones' and the venv's
    # (in that order), then the service's files, which the assembly writes as the app layer.
    assert [layer.created_by for layer in spec.layers] == [
        "esb: uv layer",
        "esb: distribution layer (starlette 1.2.0)",
        "esb: merged layer (anyio 4.16.0, venv)",
    ]
    assert spec.app is not None and spec.app.created_by == "esb: app layer"
    assert (spec.app.python_version, spec.app.interpreter) == ("3.11.2", "/usr/bin/python3.11")
    assert list(spec.app.build_file_patterns) == ["BUILD", "BUILD.*"]
    runs = layer_runs(tool)
    by_command = {
        r.full_argv[0]: r for r in runs.values() if r.full_argv[0] != "distribution-layer"
    }
    distributions = sorted(
        (r for r in runs.values() if r.full_argv[0] == "distribution-layer"),
        key=lambda r: _options(r.full_argv, "--requirement"),
    )
    assert [_options(r.full_argv, "--requirement") for r in distributions] == [
        [EXPORT.distributions[1].requirement],
        [EXPORT.distributions[0].requirement],
    ]
    expected = [by_command["uv-layer"], distributions[1], by_command["merge-layers"]]
    assert [inputs[layer.descriptor] for layer in spec.layers] == [
        layer_descriptor_of(r) for r in expected
    ]
    # The merged layer is written from the small layers' blobs, in their order; each is built
    # as before, shared by the services that lock it.
    merge = by_command["merge-layers"]
    assert merge.description == "Build the merged layer of anyio 4.16.0, venv"
    merged_inputs = files(service_runner, merge.input_digest)
    assert [merged_inputs[path] for path in _options(merge.full_argv, "--layer")] == [
        _layer_outputs(r)[LAYER_BLOB] for r in (distributions[0], by_command["venv-layer"])
    ]
    # The app layer holds the service's files, not its uv project (the venv's); a service that
    # is no package has no layer of its own project.
    assert sorted(p for p in inputs if p.startswith(f"{spec.app.directory}/")) == [
        "app/src/api/__init__.py",
        "app/src/api/__main__.py",
    ]
    assert not tool.runs("project-layer")
    # The target's fields, and labels that name the base.
    assert spec.config == ConfigChanges(
        cmd=["python", "-m", "api"],
        env={"PORT": "8080"},
        exposed_ports=["8080/tcp", "9090/udp"],
        volumes=["/data"],
        working_dir="/srv",
        user="esb",
        stop_signal="SIGTERM",
        labels={
            "org.opencontainers.image.base.digest": base_image.image_digest,
            "org.opencontainers.image.base.name": "esb/base",
            "org.example.team": "api",
        },
    )
    # The lock is checked offline with a uv cache of its own, kept between runs.
    (lock_check,) = tool.runs("export-lock")
    assert dict(lock_check.append_only_caches) == {
        "esb_uv_offline": _option(lock_check.full_argv, "--cache-dir")
    }
    # The venv layers' native libraries are checked against the base's.
    (check,) = tool.runs("check-native")
    assert len(_options(check.full_argv, "--venv-blob")) == 3

    # What comes back: the tool's image, with the base's layers below the service's.
    output = files(service_runner, built.digest)
    assert built.metadata == json.loads(output[IMAGE_METADATA])
    assert built.metadata["layers"][:2] == base_image.metadata["layers"]
    app_blob = f"the app layer of {' '.join(sorted(p for p in inputs if p.startswith('app/')))}"
    assert [layer["digest"] for layer in built.metadata["layers"][2:]] == [
        *(json.loads(inputs[layer.descriptor])["digest"] for layer in spec.layers),
        sha256(app_blob.encode()),
    ]
    assert built.layer_inventories[:2] == base_image.layer_inventories
    assert len(built.layer_inventories) == 2 + 4
    assert files(service_runner, built.layer_inventories[-1]) == {
        LAYER_INVENTORY: b'{"layer": "app"}'
    }
    assert all(path in output for path in built.layer_blob_paths)
    assert json.loads(output[IMAGE_INVENTORY])["layers"][-1] == {"layer": "app"}


def test_a_failed_distribution_install_names_the_lock_and_the_relock_command(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.failures["distribution-layer"] = (
        f"anyio 4.16.0 has no wheel for linux/amd64.\n\n" f"Fix: run {RELOCK_PLACEHOLDER}."
    )
    with pytest.raises(ExecutionError) as error:
        service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    assert error_message(error) == (
        "Installing a distribution that services/api/uv.lock pins failed:\n\n"
        "anyio 4.16.0 has no wheel for linux/amd64.\n\n"
        "Fix: run `pants esb-lock services/api:api`."
    )
    assert not service_assemblies(tool)


def test_a_native_library_the_base_lacks_fails_the_image_with_the_tools_message(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    tool.failures["check-native"] = (
        "cryptography's _rust.abi3.so needs libssl.so.3, which base:base does not have.\n\n"
        "Fix: add libssl3 to the base's packages."
    )
    with pytest.raises(ExecutionError) as error:
        service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    assert tool.failures["check-native"] in str(error.value)
    (check,) = tool.runs("check-native")
    assert check.description == f"Check the native libraries of the venv of {API}"


def make_a_package(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/api/pyproject.toml": (
                '[project]\nname = "esb-api"\nversion = "0.1.0"\ndependencies = ["starlette"]\n\n'
                '[build-system]\nrequires = ["setuptools==75.8.0"]\n'
                'build-backend = "setuptools.build_meta"\n'
            )
        }
    )


def test_a_service_that_is_a_package_has_its_project_built_below_its_files(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    make_a_package(service_runner)
    service_runner.request(BuiltImage, [ServiceImageRequest(API)])

    (run,) = tool.runs("project-layer")
    assert run.description == f"Build the project layer of {API}"
    assert _option(run.full_argv, "--service") == str(API)
    # The build reads the project's files and what it ships, not the lock.
    assert sorted(
        p for p in files(service_runner, run.input_digest) if p.startswith("project/")
    ) == [
        "project/pyproject.toml",
        "project/src/api/__init__.py",
        "project/src/api/__main__.py",
    ]
    (assembly,) = service_assemblies(tool)
    spec, inputs = the_spec(service_runner, assembly)
    assert [layer.created_by for layer in spec.layers][-2:] == [
        "esb: merged layer (anyio 4.16.0, starlette 1.2.0, venv)",
        "esb: project layer",
    ]
    assert inputs[spec.layers[-1].descriptor] == layer_descriptor_of(run)
    assert spec.app is not None


def test_a_failed_project_layer_gives_the_tools_message(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    make_a_package(service_runner)
    tool.failures["project-layer"] = (
        "The service services/api:api is a package, but its build failed.\n\nFix: fix its build."
    )
    with pytest.raises(ExecutionError) as error:
        service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    (wrapped,) = error.value.wrapped_exceptions
    assert isinstance(wrapped, ProjectLayerError)
    assert str(wrapped) == (
        "The service services/api:api is a package, but its build failed.\n\nFix: fix its build."
    )
    assert not service_assemblies(tool)


def test_a_service_without_its_lock_is_refused_with_the_lock_command(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    os.unlink(os.path.join(service_runner.build_root, "services/api/uv.lock"))
    with pytest.raises(ExecutionError) as error:
        service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    message = error_message(error)
    assert message.startswith(
        "The `sources` field of the target services/api:api selects no uv.lock in services/api/."
    )
    assert "run `pants esb-lock services/api:api`" in message
    assert not tool.requests


# -- created ---------------------------------------------------------------------------------

# 2023-11-14T22:13:20Z
COMMIT_TIME = 1_700_000_000


def commit_all(rule_runner: RuleRunner, committer_time: int) -> None:
    """Make the build root a git checkout whose HEAD has `committer_time`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": rule_runner.build_root,
        "GIT_AUTHOR_NAME": "esb",
        "GIT_AUTHOR_EMAIL": "esb@example.com",
        "GIT_COMMITTER_NAME": "esb",
        "GIT_COMMITTER_EMAIL": "esb@example.com",
        # Not the author's: the committer's time is the one recorded.
        "GIT_AUTHOR_DATE": "@1 +0000",
        "GIT_COMMITTER_DATE": f"@{committer_time} +0000",
    }
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "all"]):
        subprocess.run(["git", *argv], cwd=rule_runner.build_root, env=env, check=True)


def set_created(rule_runner: RuleRunner, value: str) -> None:
    """`created` for every image target, as a repository sets it once."""
    rule_runner.write_files(
        {"BUILD": f'__defaults__({{(esb_base_image, esb_service_image): dict(created="{value}")}})'}
    )


def test_a_service_and_its_base_are_dated_by_the_commit_checked_out(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    set_created(service_runner, "commit")
    commit_all(service_runner, COMMIT_TIME)
    service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    specs = [spec_json(service_runner, run) for run in tool.runs("assemble")]
    assert [spec["repository"] for spec in specs] == ["esb/base", "esb/api"]
    assert [spec["created"] for spec in specs] == [COMMIT_TIME, COMMIT_TIME]


def test_every_platform_of_an_image_has_the_same_date(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    locks = PackageLocks((debian_lock("amd64"), debian_lock("arm64")))
    base_runner.write_files({"arm/packages.lock.json": locks.to_json()})
    set_created(base_runner, "commit")
    commit_all(base_runner, COMMIT_TIME)
    built_for_amd64_and_arm64(base_runner, Address("arm", target_name="both"))
    specs = [spec_json(base_runner, run) for run in tool.runs("assemble")]
    assert [spec["platform"]["architecture"] for spec in specs] == ["amd64", "arm64"]
    assert [spec["created"] for spec in specs] == [COMMIT_TIME, COMMIT_TIME]


def test_source_date_epoch_wins_over_the_commit(base_runner: RuleRunner, tool: FakeTool) -> None:
    set_created(base_runner, "commit")
    commit_all(base_runner, COMMIT_TIME)
    base_runner.set_options([], env={"SOURCE_DATE_EPOCH": "1600000000"})
    base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])
    (run,) = tool.runs("assemble")
    assert spec_json(base_runner, run)["created"] == 1_600_000_000


def test_an_epoch_image_in_a_checkout_is_not_dated(base_runner: RuleRunner, tool: FakeTool) -> None:
    commit_all(base_runner, COMMIT_TIME)
    base_runner.set_options([], env={"SOURCE_DATE_EPOCH": "1600000000"})
    base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])
    (run,) = tool.runs("assemble")
    assert "created" not in spec_json(base_runner, run)


def test_a_commit_date_outside_a_checkout_names_the_target_the_field_and_the_fix(
    service_runner: RuleRunner, tool: FakeTool
) -> None:
    set_created(service_runner, "commit")
    with pytest.raises(ExecutionError) as error:
        service_runner.request(BuiltImage, [ServiceImageRequest(API)])
    message = error_message(error)
    assert message.startswith(
        'The `created` field of the target services/api:api is "commit", the time of the commit '
        f"checked out, but git finds no commit checked out at {service_runner.build_root} (fatal: "
    )
    assert message.endswith(
        'Fix: build in a git checkout with a commit (`git commit`); or set `created="epoch"`.'
    )
    assert not service_assemblies(tool)


def test_a_malformed_source_date_epoch_is_named_with_the_fix(
    base_runner: RuleRunner, tool: FakeTool
) -> None:
    set_created(base_runner, "commit")
    base_runner.set_options([], env={"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(ExecutionError) as error:
        base_runner.request(BuiltBaseImage, [BaseImageRequest(DEBIAN_BASE)])
    assert error_message(error) == (
        'The `created` field of the target base:base is "commit", the time of the commit checked '
        "out, but SOURCE_DATE_EPOCH='yesterday', which wins over the commit's time, is not a "
        "number of seconds since the epoch.\n\nFix: set SOURCE_DATE_EPOCH to one (e.g. "
        '`$(git log -1 --format=%ct)`), or unset it; or set `created="epoch"`.'
    )
    assert not tool.runs("assemble")
