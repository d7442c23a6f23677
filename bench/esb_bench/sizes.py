"""What a registry stores for all the images of a monorepo, ours and the Dockerfiles'."""

from __future__ import annotations

import json
import statistics
import tarfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from esb_bench.docker import DOCKER_TAG, DockerEngine
from esb_bench.ours import OurImage
from esb_bench.process import BenchError

# The default level of gzip and of Go's compress/gzip: `docker save` writes layers uncompressed,
# and this estimates what `docker push` would store for them.
GZIP_LEVEL = 6


@dataclass(frozen=True)
class RegistryBytes:
    base: int
    """The base image's layers and config: the same blobs on both sides."""
    total: int
    """Every distinct blob of the base and all service images: what the registry stores."""
    image_median: int
    """The median service image's compressed size: what a node without any of it pulls."""
    services: int

    @property
    def per_service(self) -> float:
        """What each service image adds to the registry beyond the base and the other images."""
        return (self.total - self.base) / self.services


def base_bytes(base: OurImage) -> int:
    """The base's layers and config: the same blobs under our images and the Dockerfiles'."""
    metadata = base.metadata
    config = base.blob(metadata["config_digest"]).stat().st_size
    return sum(layer["size"] for layer in metadata["layers"]) + config


def ours(base: OurImage, services: list[OurImage]) -> RegistryBytes:
    blobs: dict[str, int] = {}
    sizes = []
    for image in (base, *services):
        metadata = image.metadata
        for layer in metadata["layers"]:
            blobs[layer["digest"]] = layer["size"]
        blobs[metadata["config_digest"]] = image.blob(metadata["config_digest"]).stat().st_size
        if image is not base:
            sizes.append(sum(layer["size"] for layer in metadata["layers"]))
    return RegistryBytes(
        base_bytes(base), sum(blobs.values()), int(statistics.median(sizes)), len(services)
    )


def stored(images: list[OurImage]) -> int:
    """What a registry stores for `images` as written, each distinct blob once: of each platform's
    image its layers, config and manifest, and of an image of several platforms its index."""
    blobs: dict[str, int] = {}
    for image in images:
        written = image.written
        for entry in written.get("platforms", [written]):
            blobs.update((layer["digest"], layer["size"]) for layer in entry["layers"])
            for digest in (entry["digest"], entry["config_digest"]):
                blobs[digest] = image.blob(digest).stat().st_size
        blobs[written["digest"]] = image.blob(written["digest"]).stat().st_size
    return sum(blobs.values())


def regular_file(archive: tarfile.TarFile, path: Path, member: str) -> IO[bytes]:
    """The content of `member` of the archive at `path`, which `docker save` writes as a regular
    file."""
    content = archive.extractfile(member)
    if content is None:
        raise BenchError(f"{member} in {path} is not a regular file")
    return content


def gzip_size(path_and_member: tuple[Path, str]) -> int:
    archive_path, member = path_and_member
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    size = 0
    with tarfile.open(archive_path) as archive:
        stream = regular_file(archive, archive_path, member)
        while chunk := stream.read(1 << 20):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def dockerfiles(
    engine: DockerEngine, base: OurImage, repositories: list[str], scratch: Path
) -> RegistryBytes:
    """The Dockerfile images in `engine`: one `docker save` of all of them, whose layers are
    compared by diff ID with the base's and each other's, and gzipped once each."""
    shared = base_bytes(base)
    base_diff_ids = set(
        json.loads(
            engine.docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", base.reference)
        )
    )
    saved = scratch / "dockerfile-images.tar"
    engine.docker(
        "save", "-o", str(saved), *(f"{repository}:{DOCKER_TAG}" for repository in repositories)
    )
    layer_members: dict[str, str] = {}
    image_layers: list[list[str]] = []
    config_bytes = 0
    with tarfile.open(saved) as archive:
        for entry in json.load(regular_file(archive, saved, "manifest.json")):
            config = regular_file(archive, saved, entry["Config"]).read()
            config_bytes += len(config)
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            ours_only = [
                (d, m) for d, m in zip(diff_ids, entry["Layers"]) if d not in base_diff_ids
            ]
            layer_members.update(ours_only)
            image_layers.append([d for d, _ in ours_only])
    with ProcessPoolExecutor() as pool:
        members = sorted(layer_members)
        compressed = dict(
            zip(members, pool.map(gzip_size, [(saved, layer_members[d]) for d in members]))
        )
    saved.unlink()
    sizes = [shared + sum(compressed[d] for d in layers) for layers in image_layers]
    total = shared + sum(compressed.values()) + config_bytes
    return RegistryBytes(shared, total, int(statistics.median(sizes)), len(repositories))
