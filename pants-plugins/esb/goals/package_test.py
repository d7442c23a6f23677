from __future__ import annotations

import pytest

from esb.goals.package import output_path_for, packaged_entries, packaged_layout
from pants.engine.fs import FileDigest, FileEntry, SymlinkEntry

BLOB = "ab" * 32
BLOB_DIGEST = FileDigest(BLOB, 5)
INDEX_DIGEST = FileDigest("cd" * 32, 2)


@pytest.mark.parametrize(
    "built, expected",
    [
        ("image.image.json", "services.api/api.image.json"),
        ("image.inventory.json", "services.api/api.inventory.json"),
        ("image.oci/index.json", "services.api/api.oci/index.json"),
        ("image.oci/blobs/sha256/ab", "services.api/api.oci/blobs/sha256/ab"),
    ],
)
def test_output_paths(built: str, expected: str) -> None:
    assert output_path_for(built, "services.api/api") == expected


def test_blobs_are_shared_and_the_layout_links_to_them() -> None:
    image = [
        FileEntry("image.oci/index.json", INDEX_DIGEST),
        FileEntry(f"image.oci/blobs/sha256/{BLOB}", BLOB_DIGEST),
    ]
    assert packaged_entries(image, "services.api/api") == [
        SymlinkEntry("services.api/api.oci/blobs", "../../blobs"),
        FileEntry("services.api/api.oci/index.json", INDEX_DIGEST),
        FileEntry(f"blobs/sha256/{BLOB}", BLOB_DIGEST),
    ]
    # One level less deep, one `..` less.
    assert packaged_entries(image, "api")[0] == SymlinkEntry("api.oci/blobs", "../blobs")


def test_the_packaged_layout_is_the_built_one_with_its_blobs() -> None:
    image = [
        FileEntry("image.oci/index.json", INDEX_DIGEST),
        FileEntry(f"image.oci/blobs/sha256/{BLOB}", BLOB_DIGEST),
        FileEntry("image.image.json", INDEX_DIGEST),
    ]
    assert packaged_layout(packaged_entries(image, "services.api/api"), "services.api/api") == [
        FileEntry("services.api/api.oci/index.json", INDEX_DIGEST),
        FileEntry(f"services.api/api.oci/blobs/sha256/{BLOB}", BLOB_DIGEST),
    ]
