"""The JSON files that the image tool's commands read and write, as dataclasses.

Formats (all UTF-8 JSON objects; unknown keys are errors, so that a typo fails loudly):

Layer descriptor (written by the layer commands, read by `assemble`), see `tarlayer.LayerBlob`:
    {"digest": "sha256:…", "diff_id": "sha256:…", "size": 1234,
     "media_type": "application/vnd.oci.image.layer.v1.tar+gzip"}

Image spec (read by `assemble`), see `ImageSpec`; paths are relative to the working directory:
    {
      "base": {"layout": "base/oci", "ref": "latest"},        # optional; "ref" optional
      "platform": {"os": "linux", "architecture": "amd64"},   # required without a base
      "layers": [{"descriptor": "app/layer.json", "created_by": "esb: service source"}],
      "config": {"env": {"PATH": "/.venv/bin:/usr/bin"}, "entrypoint": ["/entrypoint.sh"],
                 "cmd": ["python", "-m", "app"], "working_dir": "/app", "user": "0:0", "stop_signal": "SIGINT",
                 "exposed_ports": ["8443/tcp"], "labels": {"org.example": "x"}},  # all optional
      "repository": "esb/hello",
      "tags": ["latest"],
      "created": 0,                                           # optional, seconds since the epoch
      "layer_inventories": ["base/000.json", "app/inventory.json"]  # see `ImageSpec`
    }

Image metadata (written by `assemble` as `<name>.image.json`), see `ImageMetadata`:
    {"digest": "sha256:…", "config_digest": "sha256:…", "repository": "esb/hello",
     "tags": ["latest"], "layers": [{"digest": "sha256:…", "size": 1234}, …],
     "base_digest": "sha256:…"}                               # only with a base

Like `imagetool.oci`, this module needs only the standard library and runs on Python 3.9, so
that the Pants backend can build an `ImageSpec` and write it with `to_json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagetool.errors import ToolError
from imagetool.oci import ConfigChanges, Platform


class SpecError(ToolError, ValueError):
    """A spec file is malformed; the message names the file and the key."""


def layer_descriptor_fields(value: Any, *, where: str) -> dict[str, Any]:
    """The fields of a `imagetool.tarlayer.LayerBlob` in a layer descriptor, checked."""
    fields = _Fields(value, where)
    checked = {
        "digest": fields.required("digest", str),
        "diff_id": fields.required("diff_id", str),
        "size": fields.required("size", int),
        "media_type": fields.required("media_type", str),
    }
    fields.no_others()
    return checked


@dataclass(frozen=True)
class BaseImage:
    layout: str
    """An OCI image layout directory."""
    ref: str | None = None
    """The image's `org.opencontainers.image.ref.name` in the layout; needed if it has several."""


@dataclass(frozen=True)
class LayerInput:
    descriptor: str
    """A layer descriptor JSON file (the blob itself is not an input: see `commands.assemble`)."""
    created_by: str
    """What made the layer, for the config's history; hashed, so no host paths."""


@dataclass(frozen=True)
class ImageSpec:
    repository: str
    tags: Sequence[str]
    layers: Sequence[LayerInput]
    """Added on top of the base's layers, bottom first."""
    config: ConfigChanges = field(default_factory=ConfigChanges)
    base: BaseImage | None = None
    platform: Platform | None = None
    """The image's platform: required without a base; with one, it must match the base's."""
    created: int | None = None
    """Seconds since the epoch; `None` lets the command choose (`SOURCE_DATE_EPOCH`, else 0)."""
    layer_inventories: Sequence[str] | None = None
    """Every layer's records (`--out-inventory` of the command that wrote it), bottom first, the
    base's layers included; required when the image's user names an account or group, which
    must then be in the account files the layers leave."""

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "repository": self.repository,
            "tags": list(self.tags),
            "layers": [
                {"descriptor": layer.descriptor, "created_by": layer.created_by}
                for layer in self.layers
            ],
            "config": _config_to_json(self.config),
        }
        if self.base is not None:
            value["base"] = {"layout": self.base.layout, **({"ref": self.base.ref} if self.base.ref else {})}
        if self.platform is not None:
            value["platform"] = self.platform.to_json()
        if self.created is not None:
            value["created"] = self.created
        if self.layer_inventories is not None:
            value["layer_inventories"] = list(self.layer_inventories)
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> ImageSpec:
        fields = _Fields(value, where)
        spec = cls(
            repository=fields.required("repository", str),
            tags=fields.required("tags", list, of=str),
            layers=[
                _layer_input(layer, f"{where}: layers[{i}]")
                for i, layer in enumerate(fields.required("layers", list))
            ],
            config=_config_from_json(fields.optional("config", dict) or {}, f"{where}: config"),
            base=_base_from_json(fields.optional("base", dict), f"{where}: base"),
            platform=_platform_from_json(fields.optional("platform", dict), f"{where}: platform"),
            created=fields.optional("created", int),
            layer_inventories=fields.optional("layer_inventories", list, of=str),
        )
        fields.no_others()
        return spec


@dataclass(frozen=True)
class LayerSummary:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageMetadata:
    digest: str
    """The manifest's digest: the image's identity."""
    config_digest: str
    repository: str
    tags: Sequence[str]
    layers: Sequence[LayerSummary]
    """All layers, the base's included, bottom first."""
    base_digest: str | None = None
    """The base image's manifest digest."""

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "digest": self.digest,
            "config_digest": self.config_digest,
            "repository": self.repository,
            "tags": list(self.tags),
            "layers": [{"digest": layer.digest, "size": layer.size} for layer in self.layers],
        }
        if self.base_digest is not None:
            value["base_digest"] = self.base_digest
        return value


def _layer_input(value: Any, where: str) -> LayerInput:
    fields = _Fields(value, where)
    layer = LayerInput(
        descriptor=fields.required("descriptor", str),
        created_by=fields.required("created_by", str),
    )
    fields.no_others()
    return layer


def _base_from_json(value: dict | None, where: str) -> BaseImage | None:
    if value is None:
        return None
    fields = _Fields(value, where)
    base = BaseImage(layout=fields.required("layout", str), ref=fields.optional("ref", str))
    fields.no_others()
    return base


def _platform_from_json(value: dict | None, where: str) -> Platform | None:
    if value is None:
        return None
    fields = _Fields(value, where)
    platform = Platform(
        architecture=fields.required("architecture", str),
        os=fields.required("os", str),
        variant=fields.optional("variant", str),
    )
    fields.no_others()
    return platform


def _config_to_json(config: ConfigChanges) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if config.env:
        value["env"] = dict(config.env)
    if config.entrypoint is not None:
        value["entrypoint"] = list(config.entrypoint)
    if config.cmd is not None:
        value["cmd"] = list(config.cmd)
    if config.working_dir is not None:
        value["working_dir"] = config.working_dir
    if config.user is not None:
        value["user"] = config.user
    if config.stop_signal is not None:
        value["stop_signal"] = config.stop_signal
    if config.exposed_ports:
        value["exposed_ports"] = list(config.exposed_ports)
    if config.labels:
        value["labels"] = dict(config.labels)
    return value


def _config_from_json(value: dict, where: str) -> ConfigChanges:
    fields = _Fields(value, where)
    config = ConfigChanges(
        env=fields.optional("env", dict, of=str) or {},
        entrypoint=fields.optional("entrypoint", list, of=str),
        cmd=fields.optional("cmd", list, of=str),
        working_dir=fields.optional("working_dir", str),
        user=fields.optional("user", str),
        stop_signal=fields.optional("stop_signal", str),
        exposed_ports=fields.optional("exposed_ports", list, of=str) or (),
        labels=fields.optional("labels", dict, of=str) or {},
    )
    fields.no_others()
    return config


class _Fields:
    """Typed access to a JSON object's keys, remembering which were read."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a JSON object, got {value!r}.")
        self._value = value
        self._where = where
        self._read: set[str] = set()

    def required(self, key: str, kind: type, *, of: type | None = None) -> Any:
        if key not in self._value:
            raise SpecError(f"{self._where}: the key {key!r} is required.")
        return self.optional(key, kind, of=of)

    def optional(self, key: str, kind: type, *, of: type | None = None) -> Any:
        self._read.add(key)
        value = self._value.get(key)
        if value is None:
            return None
        # bool is an int in Python, never in a spec.
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise SpecError(f"{self._where}: {key!r} must be {_JSON_NAMES[kind]}, got {value!r}.")
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if of is not None and not all(isinstance(item, of) for item in items):
            raise SpecError(f"{self._where}: every item of {key!r} must be {_JSON_NAMES[of]}, got {value!r}.")
        return value

    def no_others(self) -> None:
        unknown = sorted(set(self._value) - self._read)
        if unknown:
            raise SpecError(
                f"{self._where}: unknown keys {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(self._read))}."
            )


_JSON_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "a boolean"}
