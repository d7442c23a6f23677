"""Pull an image by digest into an OCI image layout, verifying every byte against its digest.

The reference must pin a digest: of an image manifest, or of an index (a multi-platform image),
from which the image for the wanted platform is taken. The manifest, the config and the layers
are each streamed to disk while hashed, and kept only if digest and size match what names them.
A cache directory (a layout of blobs only, shared by pulls) makes a second pull of the same
content download nothing; every blob taken from it is verified again on its way into the layout.

The layout holds the one platform's image, its manifest bytes unchanged (so that its digest
stays the one pinned), Docker media types included: `OciLayout.load_image` reads those, and
`assemble` gives a base's layers their OCI media types in the image built on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from esb_contract.media_types import (
    INDEX_MEDIA_TYPE,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPES,
)
from imagetool.oci import (
    Descriptor,
    OciError,
    OciLayout,
    Platform,
    platform_of,
    sha256_digest,
)
from imagetool.registry.auth import pull_scope
from imagetool.registry.reference import InvalidReferenceError, Reference
from imagetool.registry.transport import (
    Endpoint,
    RegistryClient,
    RegistryError,
    RegistryTimeoutError,
    RegistryTlsError,
    RegistryUnreachableError,
)

# containerd's limit: a manifest is small, and a bigger answer is not one.
_MAX_MANIFEST_BYTES = 4 << 20

T = TypeVar("T")


class BlobMismatchError(RegistryError):
    """Content from a registry does not match the digest or size that names it."""


@dataclass(frozen=True)
class PullResult:
    manifest: Descriptor
    """The image manifest, as the layout's index.json lists it (with its platform)."""
    index_digest: str | None
    """The index the reference pinned, if it pinned one rather than the manifest itself."""
    downloaded: int
    """Manifests and blobs fetched from a registry."""
    reused: int
    """Manifests and blobs found in the cache (or, without one, already in the layout)."""
    bytes_downloaded: int


def pull_image(
    client: RegistryClient,
    reference: Reference,
    platform: Platform,
    out_layout: Path,
    *,
    cache_dir: Path | None = None,
) -> PullResult:
    """Write the image `reference` pins, for `platform`, into a new OCI layout at `out_layout`."""
    if reference.digest is None:
        raise InvalidReferenceError(f"{reference}: a pull needs a digest (`…@sha256:<digest>`).")
    layout = OciLayout.create(out_layout)
    puller = _Puller(client, reference, OciLayout.create(cache_dir) if cache_dir else layout)

    media_type, data = puller.manifest(reference.digest, size=None)
    index_digest = None
    if media_type in INDEX_MEDIA_TYPES:
        index_digest = reference.digest
        chosen = _choose_platform(reference, _json(data, reference), platform)
        media_type, data = puller.manifest(chosen.digest, size=chosen.size)
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise RegistryError(
            f"{reference} is a {media_type!r}, not an image manifest or index this tool reads "
            f"({', '.join(MANIFEST_MEDIA_TYPES + INDEX_MEDIA_TYPES)})."
        )
    manifest = Descriptor(media_type, sha256_digest(data), len(data))
    where = f"{reference.name}@{manifest.digest}"
    document = _json(data, reference)
    config = Descriptor.from_json(document.get("config"), where=where)
    layers = [Descriptor.from_json(layer, where=where) for layer in document.get("layers") or []]

    layout.blob_path(manifest.digest).write_bytes(data)
    puller.blob_into(layout, config)
    image_platform = _image_platform(layout.read_json_blob(config), where)
    if not platform.matches(image_platform):
        raise RegistryError(
            f"{reference} is an image for {_platform_name(image_platform)}, not {_platform_name(platform)}."
        )
    for layer in layers:
        puller.blob_into(layout, layer)
    result = Descriptor(media_type, manifest.digest, manifest.size, platform=image_platform)
    layout.write_index([result])
    return PullResult(
        result, index_digest, puller.downloaded, puller.reused, puller.bytes_downloaded
    )


class _Puller:
    """Fetches a repository's content from its endpoints (mirrors first) into a blob store."""

    def __init__(self, client: RegistryClient, reference: Reference, store: OciLayout) -> None:
        self._reference = reference
        self._endpoints = client.pull_endpoints(reference.registry)
        self._store = store
        self._unreachable: dict[Endpoint, RegistryError] = {}
        self.downloaded = 0
        self.reused = 0
        self.bytes_downloaded = 0

    def manifest(self, digest: str, *, size: int | None) -> tuple[str, bytes]:
        """The manifest or index `digest`, and its media type."""
        path = self._store.blob_path(digest)
        if path.is_file():
            data = path.read_bytes()
            if sha256_digest(data) == digest and size in (None, len(data)):
                self.reused += 1
                return _media_type(_json(data, self._reference), None), data
        media_type, data = self._from_any_endpoint(
            f"the manifest {digest}",
            lambda endpoint: self._download_manifest(endpoint, digest, size),
        )
        _write_atomically(path, data)
        return media_type, data

    def blob_into(self, layout: OciLayout, descriptor: Descriptor) -> None:
        """Put the blob into `layout`: from the store if it has it intact, else downloaded."""
        path = self._store.blob_path(descriptor.digest)
        if path.is_file():
            try:
                if layout is not self._store:
                    layout.import_blob(path, descriptor)
                self.reused += 1
                return
            except OciError:
                path.unlink()
        self._from_any_endpoint(
            f"the blob {descriptor.digest}",
            lambda endpoint: self._download_blob(endpoint, descriptor, path),
        )
        if layout is not self._store:
            layout.import_blob(path, descriptor)

    def _from_any_endpoint(self, what: str, fetch: Callable[[Endpoint], T]) -> T:
        """`fetch` from the first endpoint that has it; an endpoint that cannot be reached or
        verified is not asked again. Content that does not match its digest is an error at once."""
        failures = []
        for endpoint in self._endpoints:
            if endpoint in self._unreachable:
                failures.append(self._unreachable[endpoint])
                continue
            try:
                return fetch(endpoint)
            except BlobMismatchError:
                raise
            except (RegistryUnreachableError, RegistryTimeoutError, RegistryTlsError) as e:
                self._unreachable[endpoint] = e
                failures.append(e)
            except RegistryError as e:
                failures.append(e)
        if len(failures) == 1:
            raise failures[0]
        raise RegistryError(
            f"Cannot fetch {what} of {self._reference.name} from any of {len(failures)} endpoints "
            "(mirrors first): " + " / ".join(str(failure) for failure in failures)
        )

    def _download_manifest(
        self, endpoint: Endpoint, digest: str, size: int | None
    ) -> tuple[str, bytes]:
        repository = self._reference.repository
        response = endpoint.request(
            "GET",
            f"/v2/{repository}/manifests/{digest}",
            scopes=[pull_scope(repository)],
            ok=(200,),
            headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES + INDEX_MEDIA_TYPES)},
        )
        data = response.content
        if len(data) > _MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"{endpoint.description} answered {len(data)} bytes for the manifest {digest} of "
                f"{repository}, more than a manifest's {_MAX_MANIFEST_BYTES}."
            )
        actual = sha256_digest(data)
        if actual != digest or size not in (None, len(data)):
            raise _mismatch("manifest", endpoint, repository, digest, size, actual, len(data))
        self.downloaded += 1
        self.bytes_downloaded += len(data)
        return _media_type(_json(data, self._reference), response.headers.get("Content-Type")), data

    def _download_blob(self, endpoint: Endpoint, descriptor: Descriptor, destination: Path) -> None:
        repository = self._reference.repository

        def attempt() -> None:
            response = endpoint.request(
                "GET",
                f"/v2/{repository}/blobs/{descriptor.digest}",
                scopes=[pull_scope(repository)],
                ok=(200,),
                # The digest is of the bytes as stored: no transfer compression, nothing decoded.
                headers={"Accept-Encoding": "identity"},
                stream=True,
                retry=False,
            )
            partial_fd, name = tempfile.mkstemp(
                dir=destination.parent, prefix=f"{destination.name}.", suffix=".partial"
            )
            partial = Path(name)
            try:
                with response, open(partial_fd, "wb") as writer:
                    chunks = endpoint.body_chunks(
                        response, f"the blob {descriptor.digest} of {repository}"
                    )
                    actual, size = _copy_hashing(chunks, writer, limit=descriptor.size)
                if (actual, size) != (descriptor.digest, descriptor.size):
                    raise _mismatch(
                        "blob",
                        endpoint,
                        repository,
                        descriptor.digest,
                        descriptor.size,
                        actual,
                        size,
                    )
                os.replace(partial, destination)
            finally:
                partial.unlink(missing_ok=True)
            self.downloaded += 1
            self.bytes_downloaded += size

        endpoint.with_retries(attempt)


def _copy_hashing(chunks: Iterable[bytes], writer: BinaryIO, *, limit: int) -> tuple[str, int]:
    """Copy `chunks` to `writer`, stopping once past `limit` bytes; the digest and size read."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            break
        digest.update(chunk)
        writer.write(chunk)
    return f"sha256:{digest.hexdigest()}", size


def _mismatch(
    kind: str,
    endpoint: Endpoint,
    repository: str,
    expected: str,
    expected_size: int | None,
    actual: str,
    actual_size: int,
) -> BlobMismatchError:
    expected_text = expected if expected_size is None else f"{expected} ({expected_size} bytes)"
    actual_text = (
        f"more than {expected_size} bytes"
        if expected_size is not None and actual_size > expected_size
        else f"{actual} ({actual_size} bytes)"
    )
    return BlobMismatchError(
        f"The {kind} {expected} of {repository} from {endpoint.description} does not match its "
        f"digest: expected {expected_text}, got {actual_text}. The registry's copy is corrupt or "
        "was altered; nothing was kept."
    )


def _json(data: bytes, reference: Reference) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{reference.name}: a manifest is not valid JSON: {e}.") from e
    if not isinstance(document, dict):
        raise RegistryError(f"{reference.name}: a manifest is not a JSON object.")
    return document


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    """A manifest's media type: its own field, else the Content-Type it came with, else its shape."""
    if document.get("mediaType"):
        return str(document["mediaType"])
    if (
        content_type
        and content_type.split(";")[0].strip() in MANIFEST_MEDIA_TYPES + INDEX_MEDIA_TYPES
    ):
        return content_type.split(";")[0].strip()
    return INDEX_MEDIA_TYPE if "manifests" in document else MANIFEST_MEDIA_TYPE


def _choose_platform(reference: Reference, index: dict[str, Any], platform: Platform) -> Descriptor:
    entries = [
        Descriptor.from_json(entry, where=f"{reference.name}@{reference.digest}")
        for entry in index.get("manifests") or []
    ]
    for entry in entries:
        if entry.platform is not None and platform.matches(entry.platform):
            return entry
    available = sorted({_platform_name(e.platform) for e in entries if e.platform is not None})
    raise RegistryError(
        f"{reference} has no image for {_platform_name(platform)}; it has: "
        f"{', '.join(available) or '(no platforms listed)'}."
    )


def _image_platform(config: Any, where: str) -> Platform:
    try:
        return platform_of(config)
    except (KeyError, TypeError, AttributeError) as e:
        raise RegistryError(f"{where}: the image config names no architecture and os.") from e


def _platform_name(platform: Platform) -> str:
    variant = f"/{platform.variant}" if platform.variant else ""
    return f"{platform.os}/{platform.architecture}{variant}"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write so that a concurrent reader (another pull sharing the cache) sees all or nothing."""
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f"{path.name}.", suffix=".partial", delete=False
    ) as partial:
        partial.write(data)
    os.replace(partial.name, path)
