"""The test engine runs linux/arm64 images, through the QEMU user-mode emulation that
tests/infra/qemu.sh registers: Debian's static aarch64 busybox, loaded as an arm64 image, runs
and reports an aarch64 machine."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import PurePosixPath
from typing import Iterator

import docker
import pytest
from debian.debfile import DebFile
from docker import DockerClient
from docker.models.images import Image

from integration.containers import run_to_exit
from integration.prerequisites import unavailable

# Debian 12's busybox-static for arm64: one statically linked aarch64 executable, /bin/busybox.
# Pinned by sha256: the test runs no binary it did not expect.
BUSYBOX_DEB = "busybox-static_1.35.0-4+deb12u1+b1_arm64.deb"
BUSYBOX_DEB_URL = f"https://deb.debian.org/debian/pool/main/b/busybox/{BUSYBOX_DEB}"
BUSYBOX_DEB_SHA256 = "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5"
DOWNLOAD_TIMEOUT_S = 120

PLATFORM = "linux/arm64"
REFERENCE = "esb-test/arm64-busybox:latest"
BUSYBOX = "/bin/busybox"
# What the container prints when the kernel has no interpreter for its binaries.
NO_INTERPRETER = "exec format error"


def _download_busybox_deb() -> bytes:
    # urllib's default TLS context honours SSL_CERT_FILE (an intercepting proxy's CA).
    try:
        with urllib.request.urlopen(BUSYBOX_DEB_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            content: bytes = response.read()
    except urllib.error.HTTPError as error:
        # The pool drops a version once bookworm's busybox is updated.
        raise AssertionError(
            f"{BUSYBOX_DEB_URL}: {error}. If Debian replaced the package, pin the current "
            "busybox-static arm64 .deb of bookworm and its sha256 in this file."
        ) from error
    actual = hashlib.sha256(content).hexdigest()
    assert actual == BUSYBOX_DEB_SHA256, f"{BUSYBOX_DEB_URL} has sha256 {actual}"
    return content


def _tar(files: dict[str, tuple[int, bytes]]) -> bytes:
    """An archive of the files, by path: (mode, content), owned by root, with no time; their
    directories first."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, (mode, content) in files.items():
            for parent in reversed(PurePosixPath(path).parents[:-1]):
                if str(parent) not in archive.getnames():
                    directory = tarfile.TarInfo(str(parent))
                    directory.type, directory.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(directory)
            member = tarfile.TarInfo(path)
            member.size, member.mode = len(content), mode
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def _arm64_image_archive(busybox: bytes) -> bytes:
    """A `docker load` archive of a linux/arm64 image whose one layer holds only `BUSYBOX`.

    Not `docker import --platform linux/arm64`: Debian 12's engine (20.10) takes only the OS
    from that platform and records its own architecture, amd64."""
    layer = _tar({BUSYBOX.lstrip("/"): (0o755, busybox)})
    config = {
        "architecture": "arm64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    manifest = [{"Config": "config.json", "RepoTags": [REFERENCE], "Layers": ["layer.tar"]}]
    return _tar(
        {
            "config.json": (0o644, json.dumps(config).encode()),
            "layer.tar": (0o644, layer),
            "manifest.json": (0o644, json.dumps(manifest).encode()),
        }
    )


@pytest.fixture(scope="module")
def arm64_image(docker_client: DockerClient) -> Iterator[Image]:
    """Debian's arm64 busybox, loaded into the engine as a linux/arm64 image; removed after."""
    with DebFile(fileobj=io.BytesIO(_download_busybox_deb())) as deb:
        busybox = deb.data.get_content(BUSYBOX.lstrip("/"))
    assert busybox, f"{BUSYBOX_DEB} has no {BUSYBOX}"
    (image,) = docker_client.images.load(_arm64_image_archive(busybox))
    try:
        yield image
    finally:
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_the_loaded_image_is_arm64(arm64_image: Image) -> None:
    assert arm64_image.attrs["Architecture"] == "arm64", arm64_image.attrs
    assert arm64_image.attrs["Os"] == "linux", arm64_image.attrs
    assert REFERENCE in arm64_image.tags, arm64_image.tags


def test_the_engine_runs_an_arm64_binary(docker_client: DockerClient, arm64_image: Image) -> None:
    result = run_to_exit(docker_client, arm64_image.id, [BUSYBOX, "uname", "-m"], platform=PLATFORM)
    if result.status != 0 and NO_INTERPRETER in result.stderr:
        unavailable(
            "the engine's kernel has no interpreter for aarch64 binaries: register QEMU with "
            f"tests/infra/qemu.sh start ({result.stderr.strip()})"
        )
    assert result.status == 0, result.report()
    assert result.stdout.strip() == "aarch64", result.report()
