"""Pushes and pulls against real registries: Debian's docker-registry (distribution 2.8).

Every test uses repositories of its own and layers of random bytes, since the shared registry
keeps what it stores between runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagetool.cli import main
from imagetool.oci import Descriptor, OciLayout, Platform, sha256_digest
from imagetool.registry.auth import push_scope
from imagetool.registry.conftest import (
    AMD64,
    DOCKER_MEDIA_TYPES,
    SharedRegistry,
    StartPrivateRegistry,
    auths_config,
    image_index,
    make_image,
    unique_repository,
    write_docker_config,
)
from imagetool.registry.pull import BlobMismatchError, pull_image
from imagetool.registry.push import BlobOutcome, push_image
from imagetool.registry.reference import Reference
from imagetool.registry.transport import (
    RegistryClient,
    RegistryReadOnlyError,
    RegistryTlsError,
    RegistryUnreachableError,
)


def random_layers(count: int, size: int = 200_000) -> list[bytes]:
    return [os.urandom(size) for _ in range(count)]


def layout_contents(layout: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (layout / "blobs" / "sha256").iterdir()}


def test_push_then_pull_by_digest(
    shared_registry: SharedRegistry, shared_client: RegistryClient, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "image", random_layers(2, size=3_000_000))
    repository = unique_repository("round-trip")
    pushed = push_image(
        shared_client,
        image.layout,
        Reference(shared_registry.host, repository, "1"),
        tags=["latest"],
        chunk_size=1 << 20,
    )
    assert (pushed.blobs_uploaded, pushed.blobs_skipped, pushed.blobs_mounted) == (3, 0, 0)
    assert pushed.bytes_uploaded == sum(blob.size for blob in image.blobs)

    reference = Reference(shared_registry.host, repository, None, pushed.digest)
    pulled = pull_image(
        shared_client, reference, AMD64, tmp_path / "pulled", cache_dir=tmp_path / "cache"
    )
    assert pulled.manifest.digest == image.manifest.digest
    assert layout_contents(tmp_path / "pulled") == layout_contents(image.layout)
    loaded = OciLayout(tmp_path / "pulled").load_image()
    assert (loaded.manifest.digest, loaded.layers) == (image.manifest.digest, image.layers)

    again = pull_image(
        shared_client, reference, AMD64, tmp_path / "again", cache_dir=tmp_path / "cache"
    )
    assert (again.downloaded, again.bytes_downloaded, again.reused) == (0, 0, 4)
    assert layout_contents(tmp_path / "again") == layout_contents(image.layout)


def test_second_push_uploads_nothing(
    shared_registry: SharedRegistry, shared_client: RegistryClient, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "image", random_layers(2))
    reference = Reference(shared_registry.host, unique_repository("re-push"), "1")
    push_image(shared_client, image.layout, reference)
    again = push_image(shared_client, image.layout, reference)
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


def test_mount_across_repositories(
    shared_registry: SharedRegistry, shared_client: RegistryClient, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "image", random_layers(2))
    base, service = unique_repository("mount-source"), unique_repository("mount-target")
    push_image(shared_client, image.layout, Reference(shared_registry.host, base, "1"))
    mounted = push_image(
        shared_client,
        image.layout,
        Reference(shared_registry.host, service, "1"),
        mount_from=[base],
    )
    assert (mounted.blobs_mounted, mounted.blobs_uploaded, mounted.bytes_uploaded) == (3, 0, 0)
    pulled = pull_image(
        shared_client,
        Reference(shared_registry.host, service, None, mounted.digest),
        AMD64,
        tmp_path / "out",
    )
    assert pulled.manifest.digest == image.manifest.digest


def test_multi_platform_index_with_docker_media_types(
    shared_registry: SharedRegistry, shared_client: RegistryClient, tmp_path: Path
) -> None:
    repository = unique_repository("index")
    images = {
        platform: make_image(
            tmp_path / platform.architecture,
            random_layers(1),
            platform=platform,
            docker_media_types=True,
        )
        for platform in (AMD64, Platform("arm64", variant="v8"))
    }
    for image in images.values():
        push_image(shared_client, image.layout, Reference(shared_registry.host, repository))
    media_type = "application/vnd.docker.distribution.manifest.list.v2+json"
    index = image_index(
        [(image.manifest, platform) for platform, image in images.items()], media_type
    )
    shared_client.endpoint(shared_registry.host).request(
        "PUT",
        f"/v2/{repository}/manifests/latest",
        scopes=[push_scope(repository)],
        ok=(201,),
        headers={"Content-Type": media_type},
        body=index,
    )
    reference = Reference(shared_registry.host, repository, "latest", sha256_digest(index))
    pulled = pull_image(shared_client, reference, Platform("arm64"), tmp_path / "pulled")
    arm64 = images[Platform("arm64", variant="v8")]
    assert pulled.index_digest == sha256_digest(index)
    assert (pulled.manifest.digest, pulled.manifest.media_type) == (
        arm64.manifest.digest,
        DOCKER_MEDIA_TYPES["manifest"],
    )
    loaded = OciLayout(tmp_path / "pulled").load_image()
    assert loaded.layers == arm64.layers
    assert loaded.platform == Platform("arm64", variant="v8")


def test_wrong_password(
    shared_registry: SharedRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    auths_config(config, shared_registry.host, shared_registry.username, "not-the-password")
    repository = unique_repository("denied")
    status = main(
        [
            "pull-image",
            "--reference",
            f"{shared_registry.host}/{repository}@sha256:{'0' * 64}",
            "--platform",
            "linux/amd64",
            "--out-layout",
            str(tmp_path / "out"),
            "--docker-config",
            str(config),
            "--registry-ca",
            f"{shared_registry.host}={shared_registry.ca}",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"{shared_registry.host} refused access to {repository} (pull): 401 ")
    assert f"used credentials for {shared_registry.host} from {config} (auths)." in err
    assert "not-the-password" not in err and shared_registry.password not in err


def test_unknown_ca_is_refused(shared_registry: SharedRegistry, tmp_path: Path) -> None:
    image = make_image(tmp_path / "image", random_layers(1))
    config = auths_config(
        tmp_path / "config.json",
        shared_registry.host,
        shared_registry.username,
        shared_registry.password,
    )
    options = shared_registry.options(config, ca_bundles={})
    with RegistryClient(options) as client, pytest.raises(RegistryTlsError) as error:
        push_image(
            client, image.layout, Reference(shared_registry.host, unique_repository("tls"), "1")
        )
    message = str(error.value)
    assert message.startswith(f"The TLS certificate of {shared_registry.host} does not verify (")
    assert "certificate verify failed" in message
    assert message.endswith(
        f"trust that CA for this registry with --registry-ca {shared_registry.host}=<PEM file>."
    )


def test_tampered_blob_in_storage(
    shared_registry: SharedRegistry, shared_client: RegistryClient, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "image", random_layers(2))
    repository = unique_repository("tampered")
    push_image(shared_client, image.layout, Reference(shared_registry.host, repository, "1"))
    layer = image.layers[1]
    stored = (
        shared_registry.storage / "blobs" / "sha256" / layer.digest[7:9] / layer.digest[7:] / "data"
    )
    assert stored.is_file(), f"tests/infra/registry.sh keeps blobs elsewhere than {stored}"
    original = stored.read_bytes()
    try:
        stored.write_bytes(bytes(byte ^ 0xFF for byte in original))
        with pytest.raises(BlobMismatchError) as error:
            pull_image(
                shared_client,
                Reference(shared_registry.host, repository, None, image.manifest.digest),
                AMD64,
                tmp_path / "out",
                cache_dir=tmp_path / "cache",
            )
    finally:
        stored.write_bytes(original)
    assert str(error.value).startswith(
        f"The blob {layer.digest} of {repository} from {shared_registry.host} does not match its digest: "
        f"expected {layer.digest} ({layer.size} bytes), got sha256:"
    )
    assert not OciLayout(tmp_path / "cache").blob_path(layer.digest).exists()


def test_credential_helper(
    shared_registry: SharedRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The CLI end to end: credentials from a helper found on PATH, push with stats, pull twice."""
    helpers = tmp_path / "bin"
    helpers.mkdir()
    helper = helpers / "docker-credential-test"
    answer = json.dumps({"Username": shared_registry.username, "Secret": shared_registry.password})
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\nprintf '%s' '{answer}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helpers}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
    config = write_docker_config(
        tmp_path / "config.json", {"credHelpers": {shared_registry.host: "test"}}
    )
    connection = [
        "--docker-config",
        str(config),
        "--registry-ca",
        f"{shared_registry.host}={shared_registry.ca}",
    ]
    image = make_image(tmp_path / "image", random_layers(2))
    repository = unique_repository("cli")

    push = [
        "push-image",
        "--layout",
        str(image.layout),
        "--reference",
        f"{shared_registry.host}/{repository}:1",
    ]
    assert (
        main([*push, "--tag", "latest", "--out-stats", str(tmp_path / "stats.json"), *connection])
        == 0
    )
    out, err = capsys.readouterr()
    assert out == (
        f"Pushed {shared_registry.host}/{repository}@{image.manifest.digest} (tags: 1, latest): 3 blobs "
        f"uploaded ({sum(b.size for b in image.blobs)} bytes), 0 present, 0 mounted.\n"
    )
    name = f"{shared_registry.host}/{repository}"
    assert err.splitlines() == [
        f"{name}: pushing {image.layout} (connect timeout 10 s, read timeout 60 s)",
        f"{name}: checking 3 blobs (layers and config)",
        *(
            line
            for blob in image.blobs
            for line in (
                f"{name}: uploading {blob.digest} ({blob.size} bytes)",
                f"{blob.digest} ({blob.size} bytes): uploaded",
            )
        ),
        f"{name}: putting the manifest {image.manifest.digest}",
        f"{name}: putting the tags 1, latest",
    ]
    assert json.loads((tmp_path / "stats.json").read_text())["blobs_uploaded"] == 3

    pull = [
        "pull-image",
        "--reference",
        f"{shared_registry.host}/{repository}:1@{image.manifest.digest}",
        "--platform",
        "linux/amd64",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    for attempt, summary in enumerate(["4 downloaded", "0 downloaded (0 bytes), 4 from the cache"]):
        assert main([*pull, "--out-layout", str(tmp_path / f"pulled-{attempt}"), *connection]) == 0
        assert summary in capsys.readouterr().out
        assert layout_contents(tmp_path / f"pulled-{attempt}") == layout_contents(image.layout)


def test_mirror_first_then_origin(
    shared_registry: SharedRegistry, private_registry: StartPrivateRegistry, tmp_path: Path
) -> None:
    mirror = private_registry("mirror")
    config = auths_config(
        tmp_path / "config.json",
        shared_registry.host,
        shared_registry.username,
        shared_registry.password,
    )
    options = shared_registry.options(
        config,
        insecure_registries=frozenset({mirror.host}),
        mirrors={shared_registry.host: [f"http://{mirror.host}"]},
    )
    repository = unique_repository("mirrored")
    only_on_mirror = make_image(tmp_path / "mirrored", random_layers(1))
    with RegistryClient(mirror.options()) as client:
        push_image(client, only_on_mirror.layout, Reference(mirror.host, repository))
    with RegistryClient(options) as client:
        reference = Reference(
            shared_registry.host, repository, None, only_on_mirror.manifest.digest
        )
        assert pull_image(client, reference, AMD64, tmp_path / "from-mirror").downloaded == 3

    only_on_origin = make_image(tmp_path / "origin", random_layers(1))
    with RegistryClient(options) as client:
        push_image(client, only_on_origin.layout, Reference(shared_registry.host, repository))
        mirror.kill()
        reference = Reference(
            shared_registry.host, repository, None, only_on_origin.manifest.digest
        )
        assert pull_image(client, reference, AMD64, tmp_path / "from-origin").downloaded == 3


def test_interrupted_push_resumes(private_registry: StartPrivateRegistry, tmp_path: Path) -> None:
    """The registry dies after the first blob: no tag, no manifest; once it is back, a second push
    completes the image and sends no blob twice. (A registry of the test's own: the shared one
    serves other tests meanwhile.)"""
    registry = private_registry("interrupted")
    image = make_image(tmp_path / "image", random_layers(3))
    reference = Reference(registry.host, "esb/interrupted", "1")
    uploaded_before_the_crash: list[str] = []
    uploaded_after_the_restart: list[str] = []

    def crash_after_first_blob(blob: Descriptor, outcome: BlobOutcome) -> None:
        uploaded_before_the_crash.append(blob.digest)
        registry.kill()

    def record(blob: Descriptor, outcome: BlobOutcome) -> None:
        if outcome is BlobOutcome.UPLOADED:
            uploaded_after_the_restart.append(blob.digest)

    with (
        RegistryClient(registry.options()) as client,
        pytest.raises(RegistryUnreachableError) as error,
    ):
        push_image(client, image.layout, reference, on_blob=crash_after_first_blob)
    assert str(error.value).startswith(
        f"Cannot reach {registry.host} (HEAD /v2/esb/interrupted/blobs/sha256:"
    )
    assert len(uploaded_before_the_crash) == 1

    registry.start()
    with RegistryClient(registry.options()) as client:
        endpoint = client.endpoint(registry.host)

        def manifest_digest(tag_or_digest: str) -> str | None:
            """The digest the registry has under this name (None: it has nothing)."""
            path = f"/v2/esb/interrupted/manifests/{tag_or_digest}"
            accept = {"Accept": image.manifest.media_type}
            response = endpoint.request("HEAD", path, scopes=[], ok=(200, 404), headers=accept)
            return (
                response.headers["Docker-Content-Digest"] if response.status_code == 200 else None
            )

        assert manifest_digest("1") is manifest_digest(image.manifest.digest) is None

        resumed = push_image(client, image.layout, reference, on_blob=record)
        assert (resumed.blobs_skipped, resumed.blobs_uploaded) == (1, len(image.blobs) - 1)
        assert sorted(uploaded_before_the_crash + uploaded_after_the_restart) == sorted(
            blob.digest for blob in image.blobs
        )
        assert manifest_digest("1") == image.manifest.digest
        pull_image(
            client,
            Reference(registry.host, "esb/interrupted", None, image.manifest.digest),
            AMD64,
            tmp_path / "out",
        )
    assert layout_contents(tmp_path / "out") == layout_contents(image.layout)


def test_read_only_registry(private_registry: StartPrivateRegistry, tmp_path: Path) -> None:
    registry = private_registry("read-only", read_only=True)
    image = make_image(tmp_path / "image", random_layers(1))
    with (
        RegistryClient(registry.options()) as client,
        pytest.raises(RegistryReadOnlyError) as error,
    ):
        push_image(client, image.layout, Reference(registry.host, "esb/read-only", "1"))
    assert str(error.value) == (
        f"{registry.host} refuses to store anything: it answered POST /v2/esb/read-only/blobs/uploads/ with "
        "405 Method Not Allowed (Method not allowed). It is read-only (e.g. in maintenance mode); push again "
        "once it accepts writes."
    )
