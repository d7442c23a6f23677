"""OCI images: canonical JSON, descriptors, image config, manifest and index, image layouts.

Everything that is hashed (config, manifest) is canonical JSON, so that the digests depend only
on the content. Time is an explicit input (`created`, in seconds since the epoch); nothing here
reads the clock, the environment or the host's identity.

What the backend writes for the tool to read (the image spec, its config changes and platform)
is in `esb_contract.image_spec`; this module applies it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from esb_contract import reference as grammar
from esb_contract.image_spec import PORT, ConfigChanges, Platform
from esb_contract.media_types import (
    DOCKER_GZIP_LAYER_MEDIA_TYPE,
    GZIP_LAYER_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    INDEX_MEDIA_TYPES,
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPES,
    ZSTD_LAYER_MEDIA_TYPE,
)
from imagetool.errors import ToolError

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"
# Docker's image store on containerd names an image loaded from an archive by this annotation.
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"

# A base image's layers keep their bytes (hence digests) in our manifest; Docker's media types
# for them name the same formats as OCI's, and an OCI manifest should not mix the two families.
_OCI_LAYER_MEDIA_TYPES = {
    GZIP_LAYER_MEDIA_TYPE: GZIP_LAYER_MEDIA_TYPE,
    LAYER_MEDIA_TYPE: LAYER_MEDIA_TYPE,
    ZSTD_LAYER_MEDIA_TYPE: ZSTD_LAYER_MEDIA_TYPE,
    DOCKER_GZIP_LAYER_MEDIA_TYPE: GZIP_LAYER_MEDIA_TYPE,
}
_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
_COPY_CHUNK_SIZE = 1 << 20


class OciError(ToolError, ValueError):
    """An image or layout is malformed, or an input does not match its digest."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte sequence per value, hence one digest."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def rfc3339(epoch_seconds: int) -> str:
    """`0` → `1970-01-01T00:00:00Z`: the form of `created` in configs and history."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fully_qualified(reference: str) -> str:
    """The reference as Docker reads it: `esb/hello:1` is `docker.io/esb/hello:1`."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return reference
    return f"docker.io/{reference}" if slash else f"docker.io/library/{reference}"


def image_reference(repository: str, tag: str) -> str:
    """`repository:tag`, after checking both against Docker's reference grammar."""
    if not grammar.NAME.fullmatch(repository):
        raise OciError(
            f"{repository!r} is not a valid image repository: use lowercase letters, digits and "
            "separators (`.`, `_`, `__`, `-`) in `/`-separated parts, optionally after a registry "
            "host, e.g. `esb/hello` or `registry.example:5000/esb/hello`."
        )
    if not grammar.TAG.fullmatch(tag):
        raise OciError(
            f"{tag!r} is not a valid image tag: use up to 128 letters, digits, `_`, `.` and `-`, "
            "not starting with `.` or `-`."
        )
    return f"{repository}:{tag}"


def platform_of(value: Mapping[str, Any]) -> Platform:
    """The platform an OCI descriptor or image config names (their other keys, e.g.
    `os.version`, left aside)."""
    return Platform(
        architecture=value["architecture"], os=value["os"], variant=value.get("variant")
    )


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data))

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            value["annotations"] = dict(self.annotations)
        if self.platform:
            value["platform"] = self.platform.to_json()
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> Descriptor:
        try:
            descriptor = cls(
                media_type=value["mediaType"],
                digest=value["digest"],
                size=value["size"],
                annotations=dict(value.get("annotations") or {}),
                platform=platform_of(value["platform"]) if value.get("platform") else None,
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise OciError(
                f"{where}: malformed descriptor {value!r} (missing or wrong {e})."
            ) from e
        if not grammar.SHA256_DIGEST.fullmatch(str(descriptor.digest)) or not isinstance(
            descriptor.size, int
        ):
            raise OciError(
                f"{where}: descriptor {value!r} needs a `sha256:<64 hex>` digest and an integer size."
            )
        return descriptor


def apply_config_changes(changes: ConfigChanges, base: Mapping[str, Any]) -> dict[str, Any]:
    """The `config` object of an image config: `base`'s (an image config's `config`) changed."""
    config = dict(base)
    if changes.env:
        config["Env"] = _set_variables(config.get("Env") or [], changes.env)
    if changes.entrypoint is not None:
        config["Entrypoint"] = list(changes.entrypoint)
        if changes.cmd is None:
            config.pop("Cmd", None)
    if changes.cmd is not None:
        config["Cmd"] = list(changes.cmd)
    if changes.working_dir is not None:
        config["WorkingDir"] = changes.working_dir
    if changes.user is not None:
        config["User"] = changes.user
    if changes.stop_signal is not None:
        config["StopSignal"] = changes.stop_signal
    if changes.exposed_ports:
        config["ExposedPorts"] = {
            **(config.get("ExposedPorts") or {}),
            **{_port(p): {} for p in changes.exposed_ports},
        }
    if changes.volumes:
        config["Volumes"] = {
            **(config.get("Volumes") or {}),
            **{_volume(v): {} for v in changes.volumes},
        }
    if changes.labels:
        config["Labels"] = {**(config.get("Labels") or {}), **changes.labels}
    return config


def _set_variables(env: Sequence[str], changes: Mapping[str, str]) -> list[str]:
    pending = dict(changes)
    result = []
    for entry in env:
        name = entry.split("=", 1)[0]
        result.append(f"{name}={pending.pop(name)}" if name in pending else entry)
    return result + [f"{name}={value}" for name, value in pending.items()]


def _port(port: str) -> str:
    if not PORT.fullmatch(port):
        raise OciError(
            f"{port!r} is not a port to expose: use `NUMBER` or `NUMBER/PROTOCOL` (tcp, udp, sctp)."
        )
    return port if "/" in port else f"{port}/tcp"


def _volume(path: str) -> str:
    if not path.startswith("/"):
        raise OciError(
            f"{path!r} is not a volume: give an absolute path in the image, e.g. `/data`."
        )
    return path


def build_image_config(
    *,
    platform: Platform,
    diff_ids: Sequence[str],
    created_by: Sequence[str],
    changes: ConfigChanges,
    created: int,
    base_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An image config: the base's (if any) plus our layers, `diff_ids[i]` made by `created_by[i]`.

    `created_by` says in words what made each layer; it is hashed into the image, so it must not
    hold host paths or anything else that differs between machines.
    """
    if len(diff_ids) != len(created_by):
        raise OciError(f"{len(diff_ids)} layers but {len(created_by)} history entries.")
    base_config = base_config or {}
    timestamp = rfc3339(created)
    return {
        **platform.to_json(),
        "created": timestamp,
        "config": apply_config_changes(changes, base_config.get("config") or {}),
        "rootfs": {
            "type": "layers",
            "diff_ids": [*base_config.get("rootfs", {}).get("diff_ids", []), *diff_ids],
        },
        "history": [
            *base_config.get("history", []),
            *({"created": timestamp, "created_by": description} for description in created_by),
        ],
    }


def build_manifest(
    config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return manifest


def build_index(manifests: Sequence[Descriptor]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [m.to_json() for m in manifests],
    }


def oci_layer_descriptor(layer: Descriptor, *, where: str) -> Descriptor:
    """`layer` under its OCI media type (a base may use Docker's names for the same bytes)."""
    media_type = _OCI_LAYER_MEDIA_TYPES.get(layer.media_type)
    if media_type is None:
        raise OciError(
            f"{where}: layer {layer.digest} has the media type {layer.media_type!r}; supported: "
            f"{', '.join(sorted(_OCI_LAYER_MEDIA_TYPES))}."
        )
    return Descriptor(media_type, layer.digest, layer.size)


@dataclass(frozen=True)
class LoadedImage:
    """One image of a layout: its manifest's descriptor, its config, and its layers' descriptors."""

    layout: OciLayout
    manifest: Descriptor
    config: Mapping[str, Any]
    layers: tuple[Descriptor, ...]

    @property
    def platform(self) -> Platform:
        return platform_of(self.config)


class OciLayout:
    """An OCI image layout directory: `oci-layout`, `index.json` and `blobs/sha256/<hex>`.

    Every blob read or imported is checked against its digest and size.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def create(cls, root: Path) -> OciLayout:
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_bytes(canonical_json(_LAYOUT_VERSION))
        return cls(root)

    def blob_path(self, digest: str) -> Path:
        if not grammar.SHA256_DIGEST.fullmatch(digest):
            raise OciError(f"{digest!r} is not a `sha256:<64 hex>` digest.")
        return self.root / "blobs" / "sha256" / digest[len("sha256:") :]

    def add_json_blob(self, media_type: str, value: Any) -> Descriptor:
        data = canonical_json(value)
        descriptor = Descriptor.of(media_type, data)
        self.blob_path(descriptor.digest).write_bytes(data)
        return descriptor

    def import_blob(self, source: Path, descriptor: Descriptor) -> None:
        """Copy the file `source` in as the blob `descriptor`, failing if it does not match."""
        destination = self.blob_path(descriptor.digest)
        partial = destination.with_name(f"{destination.name}.partial")
        digest = hashlib.sha256()
        size = 0
        with open(source, "rb") as reader, open(partial, "wb") as writer:
            for chunk in iter(lambda: reader.read(_COPY_CHUNK_SIZE), b""):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
        actual = f"sha256:{digest.hexdigest()}"
        if (actual, size) != (descriptor.digest, descriptor.size):
            partial.unlink()
            raise OciError(
                f"{source} should be the blob {descriptor.digest} of {descriptor.size} bytes, but it is "
                f"{actual} of {size} bytes."
            )
        os.replace(partial, destination)

    def read_blob(self, descriptor: Descriptor) -> bytes:
        data = self.blob_path(descriptor.digest).read_bytes()
        if (sha256_digest(data), len(data)) != (descriptor.digest, descriptor.size):
            raise OciError(
                f"{self.root}: the blob {descriptor.digest} does not match its digest or size."
            )
        return data

    def read_json_blob(self, descriptor: Descriptor) -> Any:
        return json.loads(self.read_blob(descriptor))

    def write_index(self, manifests: Sequence[Descriptor]) -> None:
        (self.root / "index.json").write_bytes(canonical_json(build_index(manifests)))

    def load_image(
        self, *, ref: str | None = None, platform: Platform | None = None
    ) -> LoadedImage:
        """The image named `ref` (by its ref.name annotation), or the layout's only image.

        Through a multi-platform index, `platform` picks the image.
        """
        return self._load(self.top(ref), platform)

    def load_images(self) -> tuple[Descriptor, tuple[LoadedImage, ...]]:
        """The layout's only entry, and its images: the one it names, or each platform's of the
        multi-platform index it names, in the index's order."""
        top = self.top()
        if top.media_type not in INDEX_MEDIA_TYPES:
            return top, (self._load(top, None),)
        where = f"{self.root}: index {top.digest}"
        entries = self.read_json_blob(top).get("manifests", [])
        return top, tuple(
            self._load(Descriptor.from_json(entry, where=where), None) for entry in entries
        )

    def top(self, ref: str | None = None) -> Descriptor:
        """The entry of `index.json` named `ref` (by its ref.name annotation), or its only one."""
        try:
            index = json.loads((self.root / "index.json").read_bytes())
            entries = index["manifests"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OciError(
                f"{self.root} is not an OCI image layout with a readable index.json: {e}"
            ) from e
        descriptors = [
            Descriptor.from_json(entry, where=f"{self.root}/index.json") for entry in entries
        ]
        if ref is not None:
            named = [d for d in descriptors if d.annotations.get(REF_NAME_ANNOTATION) == ref]
            if not named:
                names = sorted(
                    {d.annotations.get(REF_NAME_ANNOTATION, "") for d in descriptors} - {""}
                )
                raise OciError(
                    f"{self.root} has no image named {ref!r}; its names: {', '.join(names) or '(none)'}."
                )
            descriptors = named
        if len(descriptors) != 1:
            raise OciError(
                f"{self.root}/index.json lists {len(descriptors)} images; name one with the "
                f"`{REF_NAME_ANNOTATION}` annotation of its entry."
            )
        return descriptors[0]

    def _load(self, descriptor: Descriptor, platform: Platform | None) -> LoadedImage:
        where = f"{self.root}: {descriptor.digest}"
        if descriptor.media_type in INDEX_MEDIA_TYPES:
            return self._load(self._pick_platform(descriptor, platform), platform)
        if descriptor.media_type not in MANIFEST_MEDIA_TYPES:
            raise OciError(
                f"{where} has the media type {descriptor.media_type!r}, which is not an image manifest."
            )
        manifest = self.read_json_blob(descriptor)
        config_descriptor = Descriptor.from_json(manifest.get("config"), where=where)
        layers = tuple(
            Descriptor.from_json(layer, where=where) for layer in manifest.get("layers", [])
        )
        config = self.read_json_blob(config_descriptor)
        if not all(isinstance(config.get(key), str) for key in ("architecture", "os")):
            raise OciError(
                f"{where}: the config {config_descriptor.digest} names no architecture and os."
            )
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise OciError(
                f"{where}: the manifest has {len(layers)} layers but the config {len(diff_ids)} diff_ids."
            )
        return LoadedImage(layout=self, manifest=descriptor, config=config, layers=layers)

    def _pick_platform(self, index_descriptor: Descriptor, platform: Platform | None) -> Descriptor:
        where = f"{self.root}: index {index_descriptor.digest}"
        if platform is None:
            raise OciError(
                f"{where} is a multi-platform index: give the platform of the image to use."
            )
        entries = self.read_json_blob(index_descriptor).get("manifests", [])
        for descriptor in (Descriptor.from_json(entry, where=where) for entry in entries):
            if descriptor.platform and platform.matches(descriptor.platform):
                return descriptor
        raise OciError(f"{where} has no image for {platform.os}/{platform.architecture}.")


DOCKER_MANIFEST = "manifest.json"


def _docker_manifest(
    layout: OciLayout, image: Descriptor, repo_tags: Sequence[str]
) -> list[dict[str, Any]]:
    manifest = layout.read_json_blob(image)
    return [
        {
            "Config": _blob_member(manifest["config"]["digest"]),
            "RepoTags": list(repo_tags),
            "Layers": [_blob_member(layer["digest"]) for layer in manifest["layers"]],
        }
    ]


def write_docker_manifest(layout: OciLayout, image: Descriptor, repo_tags: Sequence[str]) -> None:
    """Write the `manifest.json` that `docker load` reads into the layout's root.

    With it, the layout directory tarred is also a docker archive, as `docker save` writes since
    Docker 25: no second copy of the blobs is needed to load an image into an engine.
    """
    (layout.root / DOCKER_MANIFEST).write_bytes(
        canonical_json(_docker_manifest(layout, image, repo_tags))
    )


def write_docker_archive(
    layout: OciLayout,
    out: BinaryIO,
    *,
    platform: Platform | None = None,
    repo_tags: Sequence[str] = (),
) -> None:
    """Stream `layout`'s image as an archive for `docker load` (Docker ≥ 20.10 loads gzip layers
    from it); of an image of several platforms, the image of `platform`, named `repo_tags`.

    Only the image's blobs go in: its manifest, which `index.json` names, and the config and layers
    that `manifest.json` names. The layout's `blobs/` may hold more (under `dist/` it is a link to
    every packaged image's blobs). Links are followed. The archive is written the same way every
    time: sorted, owned by root, mtime 0.
    """
    if layout.top().media_type in INDEX_MEDIA_TYPES:
        if platform is None:
            raise OciError(
                f"{layout.root} holds an image of several platforms: name the one to load."
            )
        image = layout.load_image(platform=platform)
        docker_manifest = _docker_manifest(layout, image.manifest, repo_tags)
        files = {
            "index.json": canonical_json(build_index([image.manifest])),
            DOCKER_MANIFEST: canonical_json(docker_manifest),
            "oci-layout": canonical_json(_LAYOUT_VERSION),
        }
        blobs = {image.manifest.digest, *_members_digests(docker_manifest)}
    elif not (layout.root / DOCKER_MANIFEST).is_file():
        raise OciError(
            f"{layout.root} has no {DOCKER_MANIFEST}, so `docker load` cannot read it; "
            "build the image again (`pants package`) to get one."
        )
    else:
        files = {
            name: (layout.root / name).read_bytes()
            for name in ("index.json", DOCKER_MANIFEST, "oci-layout")
        }
        blobs = _docker_archive_blobs(layout)
    # typeshed's stream-mode overload leaves out `copybufsize`, which open() passes to TarFile.
    with tarfile.open(  # type: ignore[call-overload]
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=_COPY_CHUNK_SIZE
    ) as archive:
        for directory in ("blobs", "blobs/sha256"):
            archive.addfile(_archive_member(directory, tarfile.DIRTYPE, 0))
        for digest in sorted(blobs):
            path = layout.blob_path(digest)
            try:
                reader = open(path, "rb")
            except FileNotFoundError as e:
                raise OciError(f"{path} is missing (a blob that was removed?).") from e
            with reader:
                size = os.fstat(reader.fileno()).st_size
                archive.addfile(
                    _archive_member(_blob_member(digest), tarfile.REGTYPE, size), reader
                )
        for name, data in files.items():
            archive.addfile(_archive_member(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))


def _members_digests(docker_manifest: list[dict[str, Any]]) -> set[str]:
    return {
        f"sha256:{member[len('blobs/sha256/'):]}"
        for image in docker_manifest
        for member in (image["Config"], *image["Layers"])
    }


def _docker_archive_blobs(layout: OciLayout) -> set[str]:
    try:
        manifests = [
            entry["digest"]
            for entry in json.loads((layout.root / "index.json").read_bytes())["manifests"]
        ]
        members = [
            member
            for image in json.loads((layout.root / DOCKER_MANIFEST).read_bytes())
            for member in (image["Config"], *image["Layers"])
        ]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OciError(
            f"{layout.root}: cannot tell the image's blobs from index.json and {DOCKER_MANIFEST}: {e}"
        ) from e
    outside = [member for member in members if not str(member).startswith("blobs/sha256/")]
    if outside:
        raise OciError(
            f"{layout.root}/{DOCKER_MANIFEST} names files outside blobs/sha256/: {outside}."
        )
    return {*manifests, *(f"sha256:{member[len('blobs/sha256/'):]}" for member in members)}


def _blob_member(digest: str) -> str:
    return f"blobs/sha256/{digest[len('sha256:'):]}"


def _archive_member(name: str, entry_type: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = entry_type
    info.mode = 0o755 if entry_type == tarfile.DIRTYPE else 0o644
    info.size = size
    info.mtime = 0
    info.uname = info.gname = "root"
    return info
