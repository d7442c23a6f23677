from __future__ import annotations

import pytest

from esb.goals.package import output_path_for


@pytest.mark.parametrize(
    "built, expected",
    [
        ("image.image.json", "services.api/api.image.json"),
        ("image.docker.tar", "services.api/api.docker.tar"),
        ("image.inventory.json", "services.api/api.inventory.json"),
        ("image.oci/index.json", "services.api/api.oci/index.json"),
        ("image.oci/blobs/sha256/ab", "services.api/api.oci/blobs/sha256/ab"),
    ],
)
def test_output_paths(built: str, expected: str) -> None:
    assert output_path_for(built, "services.api/api") == expected
