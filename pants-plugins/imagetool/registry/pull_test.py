from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from imagetool.oci import INDEX_MEDIA_TYPE, OciLayout, Platform, sha256_digest
from imagetool.registry.conftest import (
    AMD64,
    FAST_RETRIES,
    Answer,
    Recorded,
    Respond,
    SampleImage,
    ScriptedServer,
    free_port,
    image_index,
    make_image,
    registry_errors,
)
from imagetool.registry.pull import BlobMismatchError, pull_image
from imagetool.registry.reference import InvalidReferenceError, Reference
from imagetool.registry.transport import RegistryClient, RegistryError, RegistryOptions

StartServer = Callable[[Respond], ScriptedServer]
ARM64 = Platform("arm64")
_CONTENT_PATH = re.compile(
    r"/v2/(?P<repository>.+)/(?:manifests|blobs)/(?P<digest>sha256:[0-9a-f]{64})"
)


def contents_of(*images: SampleImage) -> dict[str, bytes]:
    return {
        f"sha256:{path.name}": path.read_bytes()
        for image in images
        for path in (image.layout / "blobs" / "sha256").iterdir()
    }


def serving(contents: Mapping[str, bytes], repository: str = "esb/base") -> Respond:
    """A registry that has `contents` (digest → bytes) in `repository`, and nothing else."""

    def respond(request: Recorded) -> Answer:
        match = _CONTENT_PATH.fullmatch(urllib.parse.urlsplit(request.path).path)
        if match is None or match["repository"] != repository or match["digest"] not in contents:
            return registry_errors(404, "BLOB_UNKNOWN", "blob unknown to registry")
        data = contents[match["digest"]]
        return Answer(200, {"Content-Type": "application/octet-stream"}, data)

    return respond


def options(
    *insecure: str, mirrors: Mapping[str, list[str]] | None = None, sleeps: list | None = None
) -> RegistryOptions:
    return RegistryOptions(
        insecure_registries=frozenset(insecure),
        mirrors=mirrors or {},
        retry=FAST_RETRIES,
        sleep=(sleeps if sleeps is not None else []).append,
    )


def pull(options: RegistryOptions, reference: Reference, out: Path, **kwargs):
    with RegistryClient(options) as client:
        return pull_image(client, reference, kwargs.pop("platform", AMD64), out, **kwargs)


@pytest.fixture
def image(tmp_path: Path) -> SampleImage:
    return make_image(tmp_path / "image", [b"first layer", b"second layer"])


def test_pull_into_layout_with_cache(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving(contents_of(image)))
    reference = Reference(origin.host, "esb/base", "1", image.manifest.digest)
    first = pull(options(origin.host), reference, tmp_path / "pulled", cache_dir=tmp_path / "cache")
    assert (first.downloaded, first.reused, first.index_digest) == (4, 0, None)
    assert first.bytes_downloaded == sum(b.size for b in (image.manifest, *image.blobs))
    loaded = OciLayout(tmp_path / "pulled").load_image()
    assert loaded.manifest == first.manifest
    assert (loaded.manifest.digest, loaded.layers) == (image.manifest.digest, image.layers)
    assert sorted(os.listdir(tmp_path / "pulled" / "blobs" / "sha256")) == sorted(
        os.listdir(image.layout / "blobs" / "sha256")
    )

    requests_before = len(origin.requests)
    second = pull(options(origin.host), reference, tmp_path / "again", cache_dir=tmp_path / "cache")
    assert (second.downloaded, second.reused, second.bytes_downloaded) == (0, 4, 0)
    assert len(origin.requests) == requests_before


def test_corrupt_cache_entry_is_downloaded_again(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving(contents_of(image)))
    reference = Reference(origin.host, "esb/base", None, image.manifest.digest)
    pull(options(origin.host), reference, tmp_path / "pulled", cache_dir=tmp_path / "cache")
    layer = image.layers[0]
    OciLayout(tmp_path / "cache").blob_path(layer.digest).write_bytes(b"x" * layer.size)
    again = pull(options(origin.host), reference, tmp_path / "again", cache_dir=tmp_path / "cache")
    assert (again.downloaded, again.reused) == (1, 3)
    OciLayout(tmp_path / "again").load_image()


def test_multi_platform_index(scripted_server: StartServer, tmp_path: Path) -> None:
    arm64_v8 = Platform("arm64", variant="v8")
    amd64 = make_image(tmp_path / "amd64", [b"amd64 layer"])
    arm64 = make_image(tmp_path / "arm64", [b"arm64 layer"], platform=arm64_v8)
    index = image_index([(amd64.manifest, AMD64), (arm64.manifest, arm64_v8)], INDEX_MEDIA_TYPE)
    index_digest = sha256_digest(index)
    origin = scripted_server(serving({**contents_of(amd64, arm64), index_digest: index}))
    reference = Reference(origin.host, "esb/base", None, index_digest)

    result = pull(options(origin.host), reference, tmp_path / "pulled", platform=ARM64)
    assert result.index_digest == index_digest
    assert result.manifest.digest == arm64.manifest.digest
    assert result.manifest.platform == arm64_v8
    assert OciLayout(tmp_path / "pulled").load_image().layers == arm64.layers

    with pytest.raises(
        RegistryError, match=r"has no image for linux/s390x; it has: linux/amd64, linux/arm64/v8\."
    ):
        pull(options(origin.host), reference, tmp_path / "none", platform=Platform("s390x"))


def test_wrong_platform(scripted_server: StartServer, image: SampleImage, tmp_path: Path) -> None:
    origin = scripted_server(serving(contents_of(image)))
    reference = Reference(origin.host, "esb/base", None, image.manifest.digest)
    with pytest.raises(RegistryError, match=r"is an image for linux/amd64, not linux/arm64\."):
        pull(options(origin.host), reference, tmp_path / "pulled", platform=ARM64)


def test_mirror_serves_the_pull(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving({}))
    mirror = scripted_server(serving(contents_of(image)))
    settings = options(origin.host, mirror.host, mirrors={origin.host: [mirror.url]})
    pull(
        settings,
        Reference(origin.host, "esb/base", None, image.manifest.digest),
        tmp_path / "pulled",
    )
    assert origin.requests == []
    assert len(mirror.requests) == 4


def test_mirror_without_the_image_falls_back(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving(contents_of(image)))
    empty_mirror = scripted_server(serving({}))
    settings = options(origin.host, empty_mirror.host, mirrors={origin.host: [empty_mirror.url]})
    pull(
        settings,
        Reference(origin.host, "esb/base", None, image.manifest.digest),
        tmp_path / "pulled",
    )
    # A mirror lacking one thing may have the next: it is asked each time.
    assert len(empty_mirror.requests) == 4
    assert len(origin.requests) == 4


def test_unreachable_mirror_is_not_asked_again(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving(contents_of(image)))
    dead_mirror = f"127.0.0.1:{free_port()}"
    sleeps: list[float] = []
    settings = options(
        origin.host, dead_mirror, mirrors={origin.host: [f"http://{dead_mirror}"]}, sleeps=sleeps
    )
    result = pull(
        settings,
        Reference(origin.host, "esb/base", None, image.manifest.digest),
        tmp_path / "pulled",
    )
    assert result.downloaded == 4
    assert sleeps == [0.01, 0.02], "only the first request to the dead mirror was retried"


def test_every_endpoint_failing(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    origin = scripted_server(serving({}))
    mirror = scripted_server(serving({}))
    settings = options(origin.host, mirror.host, mirrors={origin.host: [mirror.url]})
    digest = image.manifest.digest
    with pytest.raises(RegistryError) as error:
        pull(settings, Reference(origin.host, "esb/base", None, digest), tmp_path / "pulled")
    assert str(error.value) == (
        f"Cannot fetch the manifest {digest} of {origin.host}/esb/base from any of 2 endpoints (mirrors "
        f"first): the mirror {mirror.url} of {origin.host} has no /v2/esb/base/manifests/{digest}: 404 Not "
        f"Found (BLOB_UNKNOWN: blob unknown to registry). / {origin.host} has no "
        f"/v2/esb/base/manifests/{digest}: 404 Not Found (BLOB_UNKNOWN: blob unknown to registry)."
    )


@pytest.mark.parametrize(
    "tampered, got",
    [
        pytest.param(
            lambda data: data[:-1] + bytes([data[-1] ^ 1]),
            r"sha256:[0-9a-f]{64} \(\d+ bytes\)",
            id="same-size",
        ),
        pytest.param(lambda data: data + b"trailing", r"more than \d+ bytes", id="too-long"),
    ],
)
def test_tampered_blob_from_a_mirror(
    scripted_server: StartServer,
    image: SampleImage,
    tmp_path: Path,
    tampered: Callable[[bytes], bytes],
    got: str,
) -> None:
    layer = image.layers[1]
    contents = contents_of(image)
    contents[layer.digest] = tampered(contents[layer.digest])
    origin = scripted_server(serving(contents_of(image)))
    mirror = scripted_server(serving(contents))
    settings = options(origin.host, mirror.host, mirrors={origin.host: [mirror.url]})
    with pytest.raises(BlobMismatchError) as error:
        pull(
            settings,
            Reference(origin.host, "esb/base", None, image.manifest.digest),
            tmp_path / "out",
            cache_dir=tmp_path / "cache",
        )
    message = str(error.value)
    assert message.startswith(
        f"The blob {layer.digest} of esb/base from the mirror {mirror.url} of {origin.host} does not match "
        f"its digest: expected {layer.digest} ({layer.size} bytes), got "
    )
    assert re.search(
        f"got {got}. The registry's copy is corrupt or was altered; nothing was kept.$", message
    )
    assert (
        origin.requests == []
    ), "content that fails its digest is an error, not a reason to look elsewhere"
    leftovers = [p.name for p in (tmp_path / "cache" / "blobs" / "sha256").iterdir()]
    assert layer.digest.removeprefix("sha256:") not in leftovers
    assert not [name for name in leftovers if name.endswith(".partial")]


def test_manifest_with_the_wrong_digest(
    scripted_server: StartServer, image: SampleImage, tmp_path: Path
) -> None:
    contents = contents_of(image)
    contents[image.manifest.digest] = json.dumps({"schemaVersion": 2}).encode()
    origin = scripted_server(serving(contents))
    with pytest.raises(
        BlobMismatchError,
        match=f"^The manifest {image.manifest.digest} of esb/base from {origin.host} does not match",
    ):
        pull(
            options(origin.host),
            Reference(origin.host, "esb/base", None, image.manifest.digest),
            tmp_path / "out",
        )


def test_pull_needs_a_digest(tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError, match="a pull needs a digest"):
        pull(options(), Reference("127.0.0.1:5000", "esb/base", "1"), tmp_path / "out")
