from __future__ import annotations

import json
import random
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from imagetool.conftest import make_layout, regular
from imagetool.index import index_images
from imagetool.oci import Descriptor, OciLayout, sha256_digest
from imagetool.registry.conftest import (
    FAST_RETRIES,
    Answer,
    Recorded,
    Respond,
    SampleImage,
    ScriptedServer,
    make_image,
    registry_errors,
)
from imagetool.registry.push import (
    BlobOutcome,
    ManifestDigestError,
    PushResult,
    push_image,
    record_push,
)
from imagetool.registry.reference import InvalidReferenceError, Reference
from imagetool.registry.transport import (
    RegistryClient,
    RegistryDeadlineError,
    RegistryError,
    RegistryOptions,
    RegistryTimeoutError,
)
from imagetool.spec import ImageMetadata, LayerSummary

StartServer = Callable[[Respond], ScriptedServer]
_BLOB = re.compile(r"/v2/(?P<repository>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})")
_UPLOADS = re.compile(r"/v2/(?P<repository>.+)/blobs/uploads/(?P<session>[^/]*)")
_MANIFEST = re.compile(r"/v2/(?P<repository>.+)/manifests/(?P<reference>[^/]+)")


class FakeRegistry:
    """Enough of the distribution API for pushes, with content per repository, and hooks to
    misbehave: decline mounts, lose the answer to an upload, store under another digest, rewrite
    or refuse manifests, or hold back the answer to a request until released."""

    def __init__(self, start: StartServer) -> None:
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[str, bytes]] = {}
        self.sessions: dict[str, bytes] = {}
        self.decline_mounts = False
        self.lose_answers = 0
        self.reported_digest: str | None = None
        self.rewritten_manifest_digest: str | None = None
        """The digest under which a rewriting registry (or proxy) stores every manifest."""
        self.manifest_refusal: Answer | None = None
        self.digest_on_manifest_head = True
        self.delay_seconds = 0.0
        """How long every answer takes."""
        self.stall: Callable[[Recorded], bool] = lambda _: False
        """Requests answered only once `released` is set."""
        self.released = threading.Event()
        self.server = start(self.respond)

    def respond(self, request: Recorded) -> Answer:
        time.sleep(self.delay_seconds)
        if self.stall(request):
            self.released.wait()
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if (match := _UPLOADS.fullmatch(url.path)) is not None:
            return self._upload(request, match["repository"], match["session"], query)
        if (match := _BLOB.fullmatch(url.path)) is not None:
            present = match["digest"] in self.blobs.get(match["repository"], {})
            return Answer(200) if present else registry_errors(404, "BLOB_UNKNOWN", "blob unknown")
        if (match := _MANIFEST.fullmatch(url.path)) is not None:
            manifests = self.manifests.setdefault(match["repository"], {})
            if request.method == "PUT" and self.manifest_refusal is not None:
                return self.manifest_refusal
            if request.method == "PUT":
                manifests[match["reference"]] = request.body
                return Answer(201, {"Docker-Content-Digest": self._manifest_digest(request.body)})
            if match["reference"] not in manifests:
                return registry_errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
            stored = self._manifest_digest(manifests[match["reference"]])
            headers = {"Docker-Content-Digest": stored} if self.digest_on_manifest_head else {}
            return Answer(200, headers)
        return Answer(404)

    def _upload(
        self, request: Recorded, repository: str, session: str, query: dict[str, str]
    ) -> Answer:
        blobs = self.blobs.setdefault(repository, {})
        if request.method == "POST":
            source = self.blobs.get(query.get("from", ""), {})
            if "mount" in query and query["mount"] in source and not self.decline_mounts:
                blobs[query["mount"]] = source[query["mount"]]
                return Answer(201)
            session = f"session-{len(self.sessions)}"
            self.sessions[session] = b""
            return Answer(
                202, {"Location": f"/v2/{repository}/blobs/uploads/{session}?_state=opaque"}
            )
        self.sessions[session] += request.body
        if request.method == "PATCH":
            return Answer(
                202, {"Location": f"/v2/{repository}/blobs/uploads/{session}?_state=next"}
            )
        digest = query["digest"]
        blobs[digest] = self.sessions.pop(session)
        if self.lose_answers:
            self.lose_answers -= 1
            return Answer(500)
        return Answer(201, {"Docker-Content-Digest": self.reported_digest or digest})

    def _manifest_digest(self, body: bytes) -> str:
        return self.rewritten_manifest_digest or self.reported_digest or sha256_digest(body)

    def writes(self) -> list[str]:
        return [
            f"{r.method} {urllib.parse.urlsplit(r.path).path}"
            for r in self.server.requests
            if r.method != "HEAD"
        ]


@pytest.fixture
def registry(scripted_server: StartServer) -> Iterator[FakeRegistry]:
    fake = FakeRegistry(scripted_server)
    yield fake
    fake.released.set()


@pytest.fixture
def image(tmp_path: Path) -> SampleImage:
    # Incompressible, so that the second layer's blob spans chunks of 1 KiB.
    return make_image(tmp_path / "image", [b"a" * 1000, random.Random(0).randbytes(3000)])


def push(
    registry: FakeRegistry,
    image: SampleImage,
    repository: str = "esb/api",
    limits: Mapping[str, Any] = {},
    **kwargs,
) -> PushResult:
    options = RegistryOptions(
        insecure_registries=frozenset({registry.server.host}),
        retry=FAST_RETRIES,
        sleep=lambda _: None,
        **limits,
    )
    reference = kwargs.pop("reference", Reference(registry.server.host, repository, "1"))
    with RegistryClient(options) as client:
        return push_image(client, image.layout, reference, **kwargs)


def test_push_order_and_stats(registry: FakeRegistry, image: SampleImage) -> None:
    outcomes: list[tuple[Descriptor, BlobOutcome]] = []
    result = push(
        registry,
        image,
        tags=["latest", "1"],
        on_blob=lambda blob, outcome: outcomes.append((blob, outcome)),
    )
    digest = image.manifest.digest
    assert result == PushResult(
        reference=f"{registry.server.host}/esb/api@{digest}",
        digest=digest,
        tags=("1", "latest"),
        blobs_uploaded=3,
        blobs_skipped=0,
        blobs_mounted=0,
        bytes_uploaded=sum(blob.size for blob in image.blobs),
        manifest_uploaded=True,
    )
    assert outcomes == [(blob, BlobOutcome.UPLOADED) for blob in image.blobs]
    assert registry.writes()[-3:] == [
        f"PUT /v2/esb/api/manifests/{digest}",
        "PUT /v2/esb/api/manifests/1",
        "PUT /v2/esb/api/manifests/latest",
    ]
    assert registry.blobs["esb/api"] == {
        blob.digest: (image.layout / "blobs" / "sha256" / blob.digest[7:]).read_bytes()
        for blob in image.blobs
    }


def test_chunked_upload(registry: FakeRegistry, image: SampleImage) -> None:
    push(registry, image, chunk_size=1024)
    big = image.layers[1]
    assert big.size > 1024
    patches = [r for r in registry.server.requests if r.method == "PATCH"]
    assert [r.headers["Content-Range"] for r in patches] == [
        f"{start}-{min(start + 1024, big.size) - 1}" for start in range(0, big.size, 1024)
    ]
    assert (
        registry.blobs["esb/api"][big.digest]
        == (image.layout / "blobs" / "sha256" / big.digest[7:]).read_bytes()
    )


def test_second_push_uploads_nothing(registry: FakeRegistry, image: SampleImage) -> None:
    push(registry, image)
    writes = len(registry.writes())
    again = push(registry, image)
    assert (
        again.blobs_uploaded,
        again.blobs_skipped,
        again.bytes_uploaded,
        again.manifest_uploaded,
    ) == (
        0,
        3,
        0,
        False,
    )
    assert registry.writes()[writes:] == ["PUT /v2/esb/api/manifests/1"]


def test_mount(registry: FakeRegistry, image: SampleImage) -> None:
    push(registry, image, repository="esb/base")
    result = push(registry, image, mount_from=["esb/absent", "esb/base"])
    assert (result.blobs_mounted, result.blobs_uploaded, result.bytes_uploaded) == (3, 0, 0)


def test_declined_mount_uploads_into_the_session_it_opened(
    registry: FakeRegistry, image: SampleImage
) -> None:
    push(registry, image, repository="esb/base")
    registry.decline_mounts = True
    result = push(registry, image, mount_from=["esb/base"])
    assert (result.blobs_mounted, result.blobs_uploaded) == (0, 3)
    posts = [
        r.path for r in registry.server.requests if r.method == "POST" and "/esb/api/" in r.path
    ]
    assert len(posts) == 3 and all("mount=" in path for path in posts)


def test_upload_whose_answer_was_lost_is_not_repeated(
    registry: FakeRegistry, image: SampleImage
) -> None:
    registry.lose_answers = 1
    result = push(registry, image)
    assert result.blobs_uploaded == 3
    puts = [
        r for r in registry.server.requests if r.method == "PUT" and "/blobs/uploads/" in r.path
    ]
    assert len(puts) == 3, "the retry found the blob with HEAD and sent nothing again"


def test_registry_storing_another_digest(registry: FakeRegistry, image: SampleImage) -> None:
    registry.reported_digest = "sha256:" + "0" * 64
    with pytest.raises(
        RegistryError,
        match=rf"stored the blob {image.layers[0].digest} in esb/api as sha256:0{{64}}, not",
    ):
        push(registry, image)


def test_failed_manifest_leaves_no_tag(registry: FakeRegistry, image: SampleImage) -> None:
    registry.manifest_refusal = registry_errors(400, "MANIFEST_INVALID", "manifest invalid")
    with pytest.raises(RegistryError, match="MANIFEST_INVALID"):
        push(registry, image, tags=["latest"])
    assert [w for w in registry.writes() if "/manifests/" in w] == [
        f"PUT /v2/esb/api/manifests/{image.manifest.digest}"
    ]


def test_reference_digest_must_match_the_layout(registry: FakeRegistry, image: SampleImage) -> None:
    other = "sha256:" + "1" * 64
    with pytest.raises(InvalidReferenceError, match=f"names the digest {other}, but the image in"):
        push(registry, image, reference=Reference(registry.server.host, "esb/api", None, other))


def manifest_writes(registry: FakeRegistry) -> list[str]:
    return [write for write in registry.writes() if "/manifests/" in write]


def test_a_manifest_stored_under_another_digest_is_never_tagged(
    registry: FakeRegistry, image: SampleImage
) -> None:
    rewritten = "sha256:" + "e" * 64
    registry.rewritten_manifest_digest = rewritten
    name = f"{registry.server.host}/esb/api@{image.manifest.digest}"
    with pytest.raises(ManifestDigestError) as error:
        push(registry, image, tags=["latest", "1"])
    assert str(error.value) == (
        f"{registry.server.host} stored the manifest of {name} under the digest {rewritten}: it "
        "keeps another manifest than the one pushed (a registry or proxy that rewrites "
        "manifests). This push put no tag. Push to a registry that stores manifests unchanged, "
        "or bypass the proxy."
    )
    assert manifest_writes(registry) == [f"PUT /v2/esb/api/manifests/{image.manifest.digest}"]

    # Run again, the registry now has the manifest under our digest's path: it is checked too.
    with pytest.raises(ManifestDigestError) as again:
        push(registry, image, tags=["latest", "1"])
    assert str(again.value).startswith(
        f"{registry.server.host} has the manifest of {name} under the digest {rewritten}: "
    )
    assert manifest_writes(registry) == [f"PUT /v2/esb/api/manifests/{image.manifest.digest}"]
    assert set(registry.manifests["esb/api"]) == {image.manifest.digest}


def test_a_manifest_found_without_a_digest_is_put_again_and_checked(
    registry: FakeRegistry, image: SampleImage
) -> None:
    push(registry, image)
    registry.rewritten_manifest_digest = "sha256:" + "e" * 64
    registry.digest_on_manifest_head = False
    with pytest.raises(ManifestDigestError, match="stored the manifest of"):
        push(registry, image, tags=["latest"])
    assert manifest_writes(registry)[-1] == f"PUT /v2/esb/api/manifests/{image.manifest.digest}"
    assert "latest" not in registry.manifests["esb/api"]


def test_progress_names_each_step(registry: FakeRegistry, image: SampleImage) -> None:
    steps: list[str] = []
    push(registry, image, tags=["latest", "1"], on_step=steps.append)
    assert steps == [
        "checking 3 blobs (layers and config)",
        *(f"uploading {blob.digest} ({blob.size} bytes)" for blob in image.blobs),
        f"putting the manifest {image.manifest.digest}",
        "putting the tags 1, latest",
    ]


def test_a_manifest_put_without_answer_times_out_and_leaves_no_tag(
    registry: FakeRegistry, image: SampleImage
) -> None:
    registry.stall = lambda request: request.method == "PUT" and "/manifests/" in request.path
    with pytest.raises(RegistryTimeoutError) as error:
        push(registry, image, tags=["latest"], limits={"read_timeout_seconds": 0.5})
    assert str(error.value) == (
        f"{registry.server.host} did not answer PUT /v2/esb/api/manifests/{image.manifest.digest} "
        "within 0.5 s. If the registry is merely slow, raise the read timeout with "
        "--read-timeout SECONDS."
    )
    # Once: a timeout is not retried.
    assert manifest_writes(registry) == [f"PUT /v2/esb/api/manifests/{image.manifest.digest}"]
    assert "latest" not in registry.manifests.get("esb/api", {})


def test_a_slow_registry_is_stopped_by_the_deadline(
    registry: FakeRegistry, image: SampleImage
) -> None:
    registry.delay_seconds = 0.2
    with pytest.raises(RegistryDeadlineError) as error:
        push(
            registry,
            image,
            tags=["latest"],
            limits={"deadline_seconds": 0.7, "deadline_setting": "`push_deadline`"},
        )
    assert str(error.value).startswith(
        f"{registry.server.host}: the deadline of 0.7 s ran out while waiting for the answer to "
    )
    assert str(error.value).endswith(
        "If the registry is merely slow (or the image large), raise the deadline with "
        "`push_deadline`."
    )
    assert "latest" not in registry.manifests.get("esb/api", {})


def test_an_index_is_pushed_after_every_platforms_blobs_and_manifest(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    images = {}
    for architecture in ("amd64", "arm64"):
        directory = tmp_path / architecture
        directory.mkdir()
        layout = make_layout(
            directory, [[regular("bin/tool", architecture.encode())]], architecture=architecture
        )
        loaded = OciLayout(layout).load_image()
        config = OciLayout(layout).read_json_blob(loaded.manifest)["config"]["digest"]
        images[layout] = ImageMetadata(
            loaded.manifest.digest,
            config,
            "esb/api",
            ["1"],
            [LayerSummary(layer.digest, layer.size) for layer in loaded.layers],
        )
    out = tmp_path / "index.oci"
    index = index_images(list(images), list(images.values()), out)
    for layout in images:
        for blob in (layout / "blobs" / "sha256").iterdir():
            shutil.copyfile(blob, out / "blobs" / "sha256" / blob.name)

    options = RegistryOptions(
        insecure_registries=frozenset({registry.server.host}), retry=FAST_RETRIES
    )
    with RegistryClient(options) as client:
        result = push_image(client, out, Reference(registry.server.host, "esb/api", "1"))

    assert result.digest == index["digest"]
    assert result.blobs_uploaded == 4  # each platform's layer and config
    manifests = [image.digest for image in images.values()]
    assert registry.writes()[-4:] == [
        *(f"PUT /v2/esb/api/manifests/{digest}" for digest in manifests),
        f"PUT /v2/esb/api/manifests/{index['digest']}",
        "PUT /v2/esb/api/manifests/1",
    ]
    stored = json.loads(registry.manifests["esb/api"]["1"])
    assert [m["digest"] for m in stored["manifests"]] == manifests
    assert result.platforms == (("linux/amd64", manifests[0]), ("linux/arm64", manifests[1]))

    record = tmp_path / "dist" / "api.published.json"
    record_push(record, Reference(registry.server.host, "esb/api", "1"), result)
    [entry] = json.loads(record.read_text())["pushes"]
    assert entry["platforms"] == [
        {"platform": "linux/amd64", "digest": manifests[0]},
        {"platform": "linux/arm64", "digest": manifests[1]},
    ]


def _result(digest: str, *tags: str) -> PushResult:
    return PushResult(f"r/esb/api@{digest}", digest, tags, 0, 0, 0, 0, False)


def test_the_record_keeps_one_entry_per_repository_and_is_replaced_whole(
    tmp_path: Path,
) -> None:
    record = tmp_path / "dist" / "services.api" / "api.published.json"
    first, second = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    record_push(record, Reference("b.example:5000", "team/esb/api"), _result(first, "latest"))
    record_push(record, Reference("a.example", "esb/api"), _result(first, "latest"))
    # Pushed again, with other content: the repository's entry is replaced, the other kept.
    record_push(record, Reference("b.example:5000", "team/esb/api"), _result(second, "1.0"))

    assert json.loads(record.read_text()) == {
        "version": 1,
        "pushes": [
            {
                "name": "a.example/esb/api",
                "registry": "a.example",
                "repository": "esb/api",
                "digest": first,
                "tags": ["latest"],
                "platforms": [],
            },
            {
                "name": "b.example:5000/team/esb/api",
                "registry": "b.example:5000",
                "repository": "team/esb/api",
                "digest": second,
                "tags": ["1.0"],
                "platforms": [],
            },
        ],
    }
    # Renamed into place: no temporary file is left beside it.
    assert [path.name for path in record.parent.iterdir()] == [record.name]


def test_a_record_this_tool_did_not_write_starts_again(tmp_path: Path) -> None:
    record = tmp_path / "api.published.json"
    record.write_text("not json")
    record_push(record, Reference("a.example", "esb/api"), _result("sha256:" + "1" * 64))
    assert [entry["name"] for entry in json.loads(record.read_text())["pushes"]] == [
        "a.example/esb/api"
    ]
