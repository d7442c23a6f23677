"""The image spec both halves read and write: every spec survives the round trip, and a
malformed one is refused naming the file and the key."""

from __future__ import annotations

import json

import pytest

from esb_contract.image_spec import (
    AppLayer,
    BaseImage,
    ConfigChanges,
    ImageSpec,
    LayerInput,
    Platform,
    SpecError,
)

FULL_SPEC = ImageSpec(
    repository="esb/hello",
    tags=["latest", "1.0"],
    layers=[LayerInput(descriptor="venv/layer.json", created_by="esb: venv layer")],
    config=ConfigChanges(
        env={"PATH": "/.venv/bin:/usr/bin"},
        entrypoint=["/usr/local/bin/entrypoint.sh"],
        cmd=[],
        working_dir="/app",
        user="0:0",
        stop_signal="SIGINT",
        exposed_ports=["8443/tcp"],
        volumes=["/data"],
        labels={"org.example": "x"},
    ),
    base=BaseImage(layout="base/oci", ref="latest"),
    platform=Platform("amd64"),
    created=1_700_000_000,
    layer_inventories=["base/000.json", "venv/layer.inventory.json"],
    app=AppLayer(
        directory="app",
        created_by="esb: app layer",
        python_version="3.11.2",
        python_platform="x86_64-manylinux_2_36",
        interpreter="/usr/bin/python3.11",
        build_file_patterns=["BUILD", "BUILD.*"],
    ),
)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(FULL_SPEC, id="full"),
        pytest.param(ImageSpec(repository="esb/hello", tags=[], layers=[]), id="minimal"),
    ],
)
def test_image_spec_round_trips_through_json(spec: ImageSpec) -> None:
    assert ImageSpec.from_json(json.loads(json.dumps(spec.to_json())), where="spec.json") == spec


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param({"created": True}, "'created' must be an integer", id="bool-is-not-int"),
        pytest.param(
            {"tags": ["latest", 1]}, "every item of 'tags' must be a string", id="item-type"
        ),
        pytest.param(
            {"config": {"envs": {}}},
            "spec.json: config: unknown keys 'envs'",
            id="nested-unknown-key",
        ),
        pytest.param(
            {"layers": [{"created_by": "x"}]},
            "spec.json: layers[0]: the key 'descriptor' is required",
            id="nested-required",
        ),
        pytest.param(
            {"app": {"directory": "app", "created_by": "esb: app layer"}},
            "spec.json: app: the key 'python_version' is required",
            id="app-python",
        ),
        pytest.param(
            {"base": {"ref": "latest"}},
            "spec.json: base: the key 'layout' is required",
            id="base-layout",
        ),
    ],
)
def test_malformed_specs(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ImageSpec.from_json({**FULL_SPEC.to_json(), **change}, where="spec.json")


@pytest.mark.parametrize(
    "text, platform",
    [
        ("linux/amd64", Platform("amd64")),
        ("linux/arm64/v8", Platform("arm64", variant="v8")),
        ("windows/amd64", Platform("amd64", os="windows")),
    ],
)
def test_a_platform_reads_as_docker_spells_it_and_back(text: str, platform: Platform) -> None:
    assert Platform.parse(text) == platform
    assert str(platform) == text


@pytest.mark.parametrize(
    "text", ["linux", "amd64", "linux/", "/amd64", "linux/arm64/v8/x", "linux/ amd64", ""]
)
def test_a_malformed_platform_says_what_it_should_be(text: str) -> None:
    with pytest.raises(SpecError, match=r"is not a platform `os/architecture\[/variant\]`"):
        Platform.parse(text)
