"""Selected files of an image as its layers leave them, read from an OCI layout without running it.

The layers are read bottom to top, each once and as a stream, with OCI whiteouts applied: a
file that a later layer deletes (`.wh.<name>`) or hides (an opaque `.wh..wh..opq` in its
directory) is gone, and a later layer's entry replaces an earlier one. Only the entries a caller
selects are kept, with the data of the regular files among them, so reading a base image of a
few hundred megabytes costs one pass of decompression and little memory.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from esb_contract.media_types import (
    DOCKER_GZIP_LAYER_MEDIA_TYPE,
    DOCKER_LAYER_MEDIA_TYPE,
    GZIP_LAYER_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
)
from imagetool.errors import ToolError
from imagetool.oci import Descriptor, LoadedImage, OciLayout, Platform
from imagetool.tarlayer import OPAQUE_WHITEOUT, WHITEOUT, LayerMember

# The layer formats a stream read of Python's tarfile decompresses.
_READABLE_LAYER_MEDIA_TYPES = frozenset(
    {
        LAYER_MEDIA_TYPE,
        GZIP_LAYER_MEDIA_TYPE,
        DOCKER_GZIP_LAYER_MEDIA_TYPE,
        DOCKER_LAYER_MEDIA_TYPE,
    }
)


class ImageFilesError(ToolError, ValueError):
    """An image's layers cannot be read; the message names the image and the layer."""


@dataclass(frozen=True)
class ImageFile:
    """One entry of the image's file system: its tar header, and its data if a regular file."""

    info: tarfile.TarInfo
    data: bytes | None

    @property
    def path(self) -> str:
        return normalized_path(self.info.name)


Select = Callable[[str], bool]
"""Given an entry's path (no leading `/`, e.g. `etc/passwd`), whether to keep it."""


def normalized_path(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")


def load_single_image(layout: Path, platform: Platform | None = None) -> LoadedImage:
    """The one image of a layout (through an index, the one for `platform`)."""
    return OciLayout(layout).load_image(platform=platform)


def read_image_files(image: LoadedImage, select: Select) -> dict[str, ImageFile]:
    """The entries `select` picks, by path, as the image's layers leave them."""
    return stacked_files(
        (
            layer_members(
                image.layout,
                layer,
                select,
                f"layer {index} ({layer.digest}) of {image.layout.root}",
            )
            for index, layer in enumerate(image.layers)
        ),
        select,
    )


def stacked_files(layers: Iterable[Iterable[LayerMember]], select: Select) -> dict[str, ImageFile]:
    """The entries `select` picks, by path, as `layers` leave them stacked: bottom first, each
    its members in archive order, with the data of the regular files `select` picks."""
    files: dict[str, ImageFile] = {}
    for members in layers:
        added, deleted, opaque = _read_layer(members, select)
        # A layer's whiteouts hide what the layers below it hold, never its own entries.
        for directory in opaque:
            _delete_under(files, directory)
        for path in deleted:
            files.pop(path, None)
            _delete_under(files, path)
        for path, file in added.items():
            # Anything but a directory, put where a directory was, replaces all it held.
            if path in files and files[path].info.isdir() and not file.info.isdir():
                _delete_under(files, path)
        files.update(added)
    return files


def _delete_under(files: dict[str, ImageFile], directory: str) -> None:
    for path in [p for p in files if p.startswith(directory + "/") or not directory]:
        del files[path]


def _read_layer(
    members: Iterable[LayerMember], select: Select
) -> tuple[dict[str, ImageFile], list[str], list[str]]:
    added: dict[str, ImageFile] = {}
    deleted: list[str] = []
    opaque: list[str] = []
    for info, data in members:
        path = normalized_path(info.name)
        directory, name = posixpath.split(path)
        if name == OPAQUE_WHITEOUT:
            opaque.append(directory)
        elif name.startswith(WHITEOUT):
            deleted.append(posixpath.join(directory, name[len(WHITEOUT) :]))
        elif select(path):
            if info.islnk():
                # A hard link's target comes before it in a tar; its data is known when the
                # target was selected too.
                target = added.get(normalized_path(info.linkname))
                data = target.data if target else None
            added[path] = ImageFile(info, data)
    return added, deleted, opaque


def layer_members(
    layout: OciLayout, layer: Descriptor, select: Select, where: str
) -> Iterator[LayerMember]:
    """Every entry of a layer, in archive order, with the data of the regular files `select`
    picks (None for the others)."""
    if layer.media_type not in _READABLE_LAYER_MEDIA_TYPES:
        raise ImageFilesError(
            f"The {where} has the media type {layer.media_type!r}, which this tool cannot read; "
            f"readable: {', '.join(sorted(_READABLE_LAYER_MEDIA_TYPES))}."
        )
    try:
        with tarfile.open(layout.blob_path(layer.digest), mode="r|*") as tar:
            for member in tar:
                data = None
                if member.isreg() and select(normalized_path(member.name)):
                    reader = tar.extractfile(member)
                    data = reader.read() if reader else b""
                yield member, data
    except (OSError, tarfile.TarError, EOFError) as e:
        raise ImageFilesError(f"Cannot read the {where}: {e}.") from e


def select_paths(paths: Iterable[str], *, matching: Callable[[str], bool] | None = None) -> Select:
    """A `Select` for exact paths, and for paths `matching` accepts."""
    exact = frozenset(normalized_path(path) for path in paths)
    return lambda path: path in exact or bool(matching and matching(path))


def config_env(config: Mapping) -> dict[str, str]:
    """The `Env` of an image config, as a dict."""
    entries = (config.get("config") or {}).get("Env") or []
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)
