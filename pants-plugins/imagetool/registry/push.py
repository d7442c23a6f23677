"""Push the image of an OCI layout to a registry: blobs, then the manifest by digest, then tags.
An image of several platforms is pushed as its index: every platform's blobs, then each
platform's manifest, then the index, then the tags on the index.

Every blob is first looked for with HEAD and skipped when the repository has it; a blob that
another repository of the registry has (the caller names candidates) is mounted from there
instead of uploaded. The manifest goes up by digest only once every blob is in, and the tags
only once the manifest is: an interrupted push leaves no tag on an incomplete image, and running
it again uploads only what is missing.

No tag is put before the registry has confirmed that it stores the manifest under the digest
computed here (its `Docker-Content-Digest`): a registry, or a proxy in front of it, that rewrites
manifests would otherwise get the tags moved to an image nobody built.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from esb_contract.media_types import INDEX_MEDIA_TYPES
from imagetool.oci import Descriptor, OciLayout
from imagetool.registry.auth import Scope, pull_scope, push_scope
from imagetool.registry.reference import InvalidReferenceError, Reference, parse_tag
from imagetool.registry.transport import (
    Endpoint,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
)

_OCTET_STREAM = {"Content-Type": "application/octet-stream"}


class ManifestDigestError(RegistryError):
    """The registry stores the manifest under another digest than the one computed here."""


class BlobOutcome(enum.Enum):
    UPLOADED = "uploaded"
    SKIPPED = "skipped"
    """The repository had it already."""
    MOUNTED = "mounted"
    """Linked from another repository of the registry, without sending its bytes."""


@dataclass(frozen=True)
class PushResult:
    reference: str
    """`registry/repository@sha256:…`: the pushed image."""
    digest: str
    tags: tuple[str, ...]
    blobs_uploaded: int
    blobs_skipped: int
    blobs_mounted: int
    bytes_uploaded: int
    manifest_uploaded: bool
    """False when the repository had the manifest already."""
    platforms: tuple[tuple[str, str], ...] = ()
    """Of an index: each platform's `os/architecture[/variant]` and manifest digest, in the
    index's order."""


def push_image(
    client: RegistryClient,
    layout_dir: Path,
    reference: Reference,
    *,
    tags: Sequence[str] = (),
    mount_from: Sequence[str] = (),
    chunk_size: int | None = None,
    on_blob: Callable[[Descriptor, BlobOutcome], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> PushResult:
    """Push the layout's one image to `reference`'s repository, tagged with its tag and `tags`.

    `mount_from`: repositories of the same registry that may hold some of the blobs.
    `chunk_size`: upload blobs larger than this in chunks of this many bytes (None: whole).
    `on_blob` is called after each blob is in the repository, with how it got there.
    `on_step` is called with what the push starts doing, before each step that may take long.
    """
    layout = OciLayout(layout_dir)
    top, images = layout.load_images()
    if reference.digest not in (None, top.digest):
        raise InvalidReferenceError(
            f"{reference} names the digest {reference.digest}, but the image in {layout_dir} is "
            f"{top.digest}."
        )
    requested_tags = [reference.tag, *tags] if reference.tag else tags
    all_tags = tuple(dict.fromkeys(parse_tag(tag) for tag in requested_tags))
    blobs: dict[str, Descriptor] = {}
    for image in images:
        config = Descriptor.from_json(
            layout.read_json_blob(image.manifest)["config"], where=str(layout_dir)
        )
        blobs.update((blob.digest, blob) for blob in (*image.layers, config))

    step = on_step or (lambda _: None)
    pusher = _Pusher(client.endpoint(reference.registry), reference.repository, chunk_size, step)
    outcomes = {}
    step(f"checking {len(blobs)} blobs (layers and config{'s' if len(images) > 1 else ''})")
    for blob in blobs.values():
        outcomes[blob.digest] = pusher.push_blob(blob, layout.blob_path(blob.digest), mount_from)
        if on_blob is not None:
            on_blob(blob, outcomes[blob.digest])
    uploaded = [blob for blob in blobs.values() if outcomes[blob.digest] is BlobOutcome.UPLOADED]
    # Each platform's manifest of an index before the index: a registry refuses an index
    # whose manifests it lacks.
    for image in images if top.media_type in INDEX_MEDIA_TYPES else ():
        step(f"putting the manifest {image.manifest.digest} ({image.platform})")
        pusher.push_manifest(image.manifest, layout.read_blob(image.manifest))
    top_data = layout.read_blob(top)
    step(
        f"putting the {'index' if top.media_type in INDEX_MEDIA_TYPES else 'manifest'} {top.digest}"
    )
    manifest_uploaded = pusher.push_manifest(top, top_data)
    if all_tags:
        step(f"putting the tag{'s' if len(all_tags) > 1 else ''} {', '.join(all_tags)}")
        pusher.push_tags(top, top_data, all_tags)
    return PushResult(
        reference=f"{reference.name}@{top.digest}",
        digest=top.digest,
        tags=all_tags,
        blobs_uploaded=len(uploaded),
        blobs_skipped=list(outcomes.values()).count(BlobOutcome.SKIPPED),
        blobs_mounted=list(outcomes.values()).count(BlobOutcome.MOUNTED),
        bytes_uploaded=sum(blob.size for blob in uploaded),
        manifest_uploaded=manifest_uploaded,
        platforms=tuple(
            (str(image.platform), image.manifest.digest)
            for image in (images if top.media_type in INDEX_MEDIA_TYPES else ())
        ),
    )


PUBLISHED_VERSION = 1


def record_push(path: Path, reference: Reference, result: PushResult) -> None:
    """Add a push that succeeded to the record at `path` (what `publish` writes as
    `<output>.published.json`, for CI to read the pushed digests): one entry per registry and
    repository, replacing that one's earlier entry and keeping the others'. Written to a
    temporary file beside it and renamed into place: a reader sees the old record or the new
    one, never half of one."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))["pushes"]
        entries = {entry["name"]: entry for entry in earlier if isinstance(entry, dict)}
    except (OSError, ValueError, KeyError, TypeError):
        # None yet, or not one this tool wrote: the record starts again from this push.
        entries = {}
    entries[reference.name] = {
        "name": reference.name,
        "registry": reference.registry,
        "repository": reference.repository,
        "digest": result.digest,
        "tags": list(result.tags),
        "platforms": [
            {"platform": platform, "digest": digest} for platform, digest in result.platforms
        ],
    }
    record = {"version": PUBLISHED_VERSION, "pushes": [entries[name] for name in sorted(entries)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as temporary:
        try:
            json.dump(record, temporary, indent=2, sort_keys=True)
            temporary.write("\n")
            temporary.flush()
            os.fsync(temporary.fileno())
        except BaseException:
            os.unlink(temporary.name)
            raise
    os.replace(temporary.name, path)


class _Pusher:
    def __init__(
        self,
        endpoint: Endpoint,
        repository: str,
        chunk_size: int | None,
        step: Callable[[str], None],
    ) -> None:
        self._endpoint = endpoint
        self._repository = repository
        self._scopes = [push_scope(repository)]
        self._chunk_size = chunk_size
        self._step = step

    def push_blob(self, blob: Descriptor, path: Path, mount_from: Sequence[str]) -> BlobOutcome:
        if self._has_blob(self._repository, blob, self._scopes):
            return BlobOutcome.SKIPPED
        session = None
        for source in mount_from:
            if source != self._repository and self._has_blob(source, blob, [pull_scope(source)]):
                session = self._mount(blob, source)
                if session is None:
                    return BlobOutcome.MOUNTED
                break
        # The first attempt uses the upload session a declined mount opened; a retry opens its
        # own, after checking that the failed attempt did not in fact complete.
        sessions = [session]
        self._step(f"uploading {blob.digest} ({blob.size} bytes)")

        def attempt() -> BlobOutcome:
            if not sessions and self._has_blob(self._repository, blob, self._scopes, retry=False):
                return BlobOutcome.UPLOADED
            self._upload(blob, path, sessions.pop() if sessions else None)
            return BlobOutcome.UPLOADED

        return self._endpoint.with_retries(attempt)

    def push_manifest(self, manifest: Descriptor, data: bytes) -> bool:
        """Put the manifest by digest unless the repository has it under that digest already;
        whether it was put. Raises a `ManifestDigestError` when the registry stores it under
        another digest."""
        present = self._endpoint.request(
            "HEAD",
            self._manifest_path(manifest.digest),
            scopes=self._scopes,
            ok=(200, 404),
            headers={"Accept": manifest.media_type},
        )
        # A manifest found without a digest to check is put again: putting it is what makes the
        # registry say under which digest it stores it.
        if present.status_code == 200 and present.headers.get("Docker-Content-Digest"):
            self._check_manifest_digest(present.headers, manifest, "has")
            return False
        response = self._put_manifest(manifest, data, manifest.digest)
        self._check_manifest_digest(response.headers, manifest, "stored")
        return True

    def push_tags(self, manifest: Descriptor, data: bytes, tags: Sequence[str]) -> None:
        """Put the manifest under each tag (after `push_manifest`)."""
        for tag in tags:
            response = self._put_manifest(manifest, data, tag)
            self._check_digest(response.headers, manifest.digest, f"the manifest {tag}")

    def _put_manifest(self, manifest: Descriptor, data: bytes, reference: str) -> requests.Response:
        return self._endpoint.request(
            "PUT",
            self._manifest_path(reference),
            scopes=self._scopes,
            ok=(200, 201),
            headers={"Content-Type": manifest.media_type},
            body=data,
        )

    def _check_manifest_digest(
        self, headers: Mapping[str, str], manifest: Descriptor, verb: str
    ) -> None:
        stored = headers.get("Docker-Content-Digest")
        if stored and stored != manifest.digest:
            raise ManifestDigestError(
                f"{self._endpoint.description} {verb} the manifest of "
                f"{self._endpoint.registry}/{self._repository}@{manifest.digest} under the digest "
                f"{stored}: it keeps another manifest than the one pushed (a registry or proxy "
                "that rewrites manifests). This push put no tag. Push to a registry that stores "
                "manifests unchanged, or bypass the proxy."
            )

    def _has_blob(
        self, repository: str, blob: Descriptor, scopes: Sequence[Scope], *, retry: bool = True
    ) -> bool:
        try:
            response = self._endpoint.request(
                "HEAD",
                f"/v2/{repository}/blobs/{blob.digest}",
                scopes=scopes,
                ok=(200, 404),
                retry=retry,
            )
        except RegistryAuthError:
            if repository == self._repository:
                raise
            # A candidate to mount from that these credentials may not read: not a source.
            return False
        return response.status_code == 200

    def _mount(self, blob: Descriptor, source: str) -> str | None:
        """Mount `blob` from `source`: None if done, else the upload session the registry opened."""
        query = urllib.parse.urlencode({"mount": blob.digest, "from": source})
        response = self._endpoint.request(
            "POST",
            f"/v2/{self._repository}/blobs/uploads/?{query}",
            scopes=[*self._scopes, pull_scope(source)],
            ok=(201, 202),
        )
        return None if response.status_code == 201 else self._location(response.headers)

    def _upload(self, blob: Descriptor, path: Path, session: str | None) -> None:
        if session is None:
            started = self._endpoint.request(
                "POST",
                f"/v2/{self._repository}/blobs/uploads/",
                scopes=self._scopes,
                ok=(202,),
                retry=False,
            )
            session = self._location(started.headers)
        if self._chunk_size is None or blob.size <= self._chunk_size:
            response = self._endpoint.request(
                "PUT",
                _with_query(session, digest=blob.digest),
                scopes=self._scopes,
                ok=(201,),
                headers=_OCTET_STREAM,
                body=lambda: path.open("rb"),
                retry=False,
            )
        else:
            offset = 0
            with path.open("rb") as reader:
                while chunk := reader.read(self._chunk_size):
                    patched = self._endpoint.request(
                        "PATCH",
                        session,
                        scopes=self._scopes,
                        ok=(202,),
                        headers={
                            **_OCTET_STREAM,
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        },
                        body=chunk,
                        retry=False,
                    )
                    session = self._location(patched.headers)
                    offset += len(chunk)
            response = self._endpoint.request(
                "PUT",
                _with_query(session, digest=blob.digest),
                scopes=self._scopes,
                ok=(201,),
                retry=False,
            )
        self._check_digest(response.headers, blob.digest, f"the blob {blob.digest}")

    def _location(self, headers: Mapping[str, str]) -> str:
        location = headers.get("Location")
        if not location:
            raise RegistryError(
                f"{self._endpoint.description} opened an upload in {self._repository} without "
                "saying where to send it (no Location header)."
            )
        return self._endpoint.url(location)

    def _check_digest(self, headers: Mapping[str, str], expected: str, what: str) -> None:
        stored = headers.get("Docker-Content-Digest")
        if stored and stored != expected:
            raise RegistryError(
                f"{self._endpoint.description} stored {what} in {self._repository} as {stored}, "
                f"not {expected}."
            )

    def _manifest_path(self, reference: str) -> str:
        return f"/v2/{self._repository}/manifests/{reference}"


def _with_query(url: str, **parameters: str) -> str:
    """`url` with `parameters` added to its query (an upload URL carries state in its own)."""
    parts = urllib.parse.urlsplit(url)
    query = "&".join(filter(None, [parts.query, urllib.parse.urlencode(parameters)]))
    return urllib.parse.urlunsplit(parts._replace(query=query))
