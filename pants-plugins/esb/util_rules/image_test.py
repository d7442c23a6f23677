from __future__ import annotations

import json

import pytest
from pants.engine.fs import (
    EMPTY_DIGEST,
    EMPTY_FILE_DIGEST,
    AddPrefix,
    CreateDigest,
    Digest,
    DigestContents,
    DigestEntries,
    DigestSubset,
    FileContent,
    MergeDigests,
    RemovePrefix,
)
from pants.engine.process import (
    FallibleProcessResult,
    Process,
    ProcessExecutionEnvironment,
    ProcessResultMetadata,
)
from pants.testutil.rule_runner import MockGet, run_rule_with_mocks

from esb.subsystems.image_tool import ImageToolRequest
from esb.util_rules.image import (
    AppLayerFiles,
    BuiltImage,
    ImageAssemblyError,
    ImageAssemblyRequest,
    assemble_image,
    assembly_failure_message,
    assembly_spec,
    config_json,
)
from esb.util_rules.layers import BuiltLayer
from esb.util_rules.platform import BasePlatform
from esb_contract.image_spec import AppLayer, ConfigChanges, ImageSpec, Platform
from esb_contract.messages import TOOL_BUG, USER_ERROR

_INVENTORIES = ("inventories/000/layer.inventory.json", "inventories/001/layer.inventory.json")


def _request(**kwargs) -> ImageAssemblyRequest:
    return ImageAssemblyRequest(
        description="Assemble the image services/api:api",
        repository="esb/api",
        tags=("latest", "1.0"),
        architecture="amd64",
        config_json=config_json(ConfigChanges(cmd=["python"], env={"A": "1"}, volumes=["/data"])),
        layers=(BuiltLayer("uv", EMPTY_DIGEST), BuiltLayer("app", EMPTY_DIGEST)),
        **kwargs,
    )


def test_spec_without_base_names_the_platform() -> None:
    spec = assembly_spec(_request(), ("layers/00-uv", "layers/01-app"), _INVENTORIES)
    assert spec == {
        "config": {"cmd": ["python"], "env": {"A": "1"}, "volumes": ["/data"]},
        "layer_inventories": list(_INVENTORIES),
        "layers": [
            {
                "created_by": "esb: uv layer",
                "descriptor": "layers/00-uv/layer.json",
            },
            {
                "created_by": "esb: app layer",
                "descriptor": "layers/01-app/layer.json",
            },
        ],
        "platform": {"architecture": "amd64", "os": "linux"},
        "repository": "esb/api",
        "tags": ["latest", "1.0"],
    }


def test_the_spec_the_backend_writes_is_the_one_the_tool_reads() -> None:
    request = _request()
    spec = ImageSpec.from_json(
        json.loads(json.dumps(assembly_spec(request, ("l/0", "l/1"), _INVENTORIES))), where="spec"
    )
    assert spec.config == ConfigChanges(cmd=["python"], env={"A": "1"}, volumes=["/data"])
    assert [layer.descriptor for layer in spec.layers] == ["l/0/layer.json", "l/1/layer.json"]
    assert spec.platform == Platform("amd64") and spec.base is None
    assert list(spec.layer_inventories or ()) == list(_INVENTORIES)
    # Canonical: the same changes give the same request, whatever the order they were given in.
    assert config_json(ConfigChanges(env={"B": "1", "A": "2"})) == config_json(
        ConfigChanges(env={"A": "2", "B": "1"})
    )


def test_the_app_layer_is_described_by_the_bases_python_and_pants_build_file_patterns() -> None:
    app = AppLayerFiles(
        EMPTY_DIGEST, BasePlatform("3.11.2", "2.36", "arm64", "/usr/bin/python3.11"), ("BUILD",)
    )
    spec = ImageSpec.from_json(
        assembly_spec(_request(app=app), ("l/0", "l/1"), _INVENTORIES), where="spec"
    )
    assert spec.app == AppLayer(
        directory="app",
        created_by="esb: app layer",
        python_version="3.11.2",
        python_platform="aarch64-manylinux_2_36",
        interpreter="/usr/bin/python3.11",
        build_file_patterns=["BUILD"],
    )
    assert [layer.created_by for layer in spec.layers] == ["esb: uv layer", "esb: app layer"]


def test_a_bug_in_the_tool_is_reported_as_one() -> None:
    message = assembly_failure_message(
        "Assemble the image services/api:api", TOOL_BUG, "Traceback (most recent call last):\n"
    )
    assert message.startswith(
        "Assemble the image services/api:api failed:\n\nThe image tool failed unexpectedly "
        "(exit status 70): this is a bug in esb-images."
    )


def test_failure_message_is_the_tools_own_introduced_by_the_step() -> None:
    stderr = "The `user` field is 'x', but ...\n\nFix: add it.\n"
    assert assembly_failure_message("Assemble the image services/api:api", USER_ERROR, stderr) == (
        "Assemble the image services/api:api failed:\n\nThe `user` field is 'x', but ...\n\n"
        "Fix: add it."
    )


_TOOL_MESSAGE = "The `user` field is 'nosuchuser', but the image has no user"


def _failed_assembly(process: Process) -> FallibleProcessResult:
    return FallibleProcessResult(
        stdout=b"",
        stdout_digest=EMPTY_FILE_DIGEST,
        stderr=f"{_TOOL_MESSAGE}\n".encode(),
        stderr_digest=EMPTY_FILE_DIGEST,
        exit_code=1,
        output_digest=EMPTY_DIGEST,
        metadata=ProcessResultMetadata(
            0,
            ProcessExecutionEnvironment(
                environment_name=None,
                platform="linux_x86_64",
                docker_image=None,
                remote_execution=False,
                remote_execution_extra_platform_properties=[],
            ),
            "ran",
            0,
        ),
    )


def test_a_refused_assembly_fails_with_the_tools_message_and_every_layers_records() -> None:
    base_metadata = json.dumps({"layers": [{"digest": "sha256:ab"}]})
    base = BuiltImage(EMPTY_DIGEST, base_metadata, (EMPTY_DIGEST,))
    specs: list[dict] = []

    def create_digest(request: CreateDigest) -> Digest:
        specs.extend(
            json.loads(file.content)
            for file in request
            if isinstance(file, FileContent) and file.path == "spec.json"
        )
        return EMPTY_DIGEST

    with pytest.raises(ImageAssemblyError) as exc:
        run_rule_with_mocks(
            assemble_image,
            rule_args=[_request(base=base)],
            mock_gets=[
                MockGet(Digest, (DigestSubset,), lambda _: EMPTY_DIGEST),
                MockGet(Digest, (AddPrefix,), lambda _: EMPTY_DIGEST),
                MockGet(Digest, (RemovePrefix,), lambda _: EMPTY_DIGEST),
                MockGet(Digest, (MergeDigests,), lambda _: EMPTY_DIGEST),
                MockGet(Digest, (CreateDigest,), create_digest),
                MockGet(DigestEntries, (Digest,), lambda _: DigestEntries([])),
                MockGet(DigestContents, (Digest,), lambda _: DigestContents([])),
                MockGet(
                    Process,
                    (ImageToolRequest,),
                    lambda request: Process(request.argv, description=request.description),
                ),
                MockGet(FallibleProcessResult, (Process,), _failed_assembly),
            ],
        )

    assert str(exc.value) == (
        "Assemble the image services/api:api failed:\n\nThe `user` field is 'nosuchuser', but "
        "the image has no user"
    )
    # The base's one layer and the image's two.
    assert [spec["layer_inventories"] for spec in specs] == [
        [f"inventories/{i:03d}/layer.inventory.json" for i in range(3)]
    ]
