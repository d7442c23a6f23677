from __future__ import annotations

from esb.util_rules.image import ImageAssemblyRequest, assembly_spec, config_json
from esb.util_rules.layers import BuiltLayer
from pants.engine.fs import EMPTY_DIGEST


def _request(**kwargs) -> ImageAssemblyRequest:
    return ImageAssemblyRequest(
        description="d",
        repository="esb/api",
        tags=("latest", "1.0"),
        architecture="amd64",
        config_json=config_json(cmd=["python"], env={"A": "1"}),
        layers=(BuiltLayer("uv", EMPTY_DIGEST), BuiltLayer("app", EMPTY_DIGEST)),
        **kwargs,
    )


def test_spec_without_base_names_the_platform() -> None:
    spec = assembly_spec(_request(), ("layers/00-uv", "layers/01-app"))
    assert spec == {
        "config": {"cmd": ["python"], "env": {"A": "1"}},
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


def test_config_json_is_canonical() -> None:
    assert config_json(b=1, a=2) == config_json(a=2, b=1) == '{"a": 2, "b": 1}'
