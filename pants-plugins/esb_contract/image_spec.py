"""The image spec: what the backend asks the image tool's `assemble` command to build, written
by one half with `to_json` and read by the other with `from_json` (unknown keys are errors, so
that a typo fails loudly).

    {
      "base": {"layout": "base/oci", "ref": "latest"},        # optional; "ref" optional
      "platform": {"os": "linux", "architecture": "amd64"},   # required without a base
      "layers": [{"descriptor": "venv/layer.json", "created_by": "esb: venv layer"}],
      "app": {"directory": "app", "created_by": "esb: app layer",          # optional: see
              "python_version": "3.11.2", "python_platform": "x86_64-manylinux_2_36",  # `AppLayer`
              "interpreter": "/usr/bin/python3.11", "build_file_patterns": ["BUILD"]},
      "config": {"env": {"PATH": "/.venv/bin:/usr/bin"}, "entrypoint": ["/entrypoint.sh"],
                 "cmd": ["python", "-m", "app"], "working_dir": "/app", "user": "0:0",
                 "stop_signal": "SIGINT", "exposed_ports": ["8443/tcp"],
                 "volumes": ["/data"], "labels": {"org.example": "x"}},  # all optional
      "repository": "esb/hello",
      "tags": ["latest"],
      "created": 0,                                           # optional, seconds since the epoch
      "layer_inventories": ["base/000.json", "venv/inventory.json"]  # see `ImageSpec`
    }

A new image config field is a field of `ConfigChanges` (with its key in `to_json` and
`from_json`), the tool's `apply_config_changes`, and the target field that sets it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

# An exposed port as the config names it: a number, and optionally its protocol (`/tcp` when none
# is given). The number's range (1-65535) is the target field's to check.
PORT = re.compile(r"(?P<port>[0-9]{1,5})(?:/(?P<protocol>tcp|udp|sctp))?")
# An environment variable's name, as POSIX shells (and so the base's entrypoint) read them.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# Where an image's app layer puts the service's files; the venv's `.pth` names this directory
# (or its `src/`) too.
APP_PATH = "/app"


class SpecError(ValueError):
    """A spec is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Platform:
    architecture: str
    """In Go's terms, as images use them: `amd64`, `arm64`."""
    os: str = "linux"
    variant: Optional[str] = None

    def to_json(self) -> Dict[str, str]:
        value = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            value["variant"] = self.variant
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> Platform:
        fields = JsonFields(value, where)
        platform = cls(
            architecture=fields.required("architecture", str),
            os=fields.required("os", str),
            variant=fields.optional("variant", str),
        )
        fields.no_others()
        return platform

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/architecture[/variant]`, as Docker and OCI tools spell a platform, e.g.
        `linux/amd64` or `linux/arm64/v8`; a `SpecError` says what is wrong."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts) or any(p != p.strip() for p in parts):
            raise SpecError(f"{text!r} is not a platform `os/architecture[/variant]`")
        return cls(architecture=parts[1], os=parts[0], variant=parts[2] if parts[2:] else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: Platform) -> bool:
        """Whether an image for `other` runs here; a variant only counts when both name one."""
        same_variant = not (self.variant and other.variant) or self.variant == other.variant
        return (self.os, self.architecture) == (other.os, other.architecture) and same_variant


@dataclass(frozen=True)
class ConfigChanges:
    """Changes to the runtime config inherited from the base, as a Dockerfile's instructions
    make them.

    `None` keeps the base's value (`[]` clears a list); `env`, `exposed_ports`, `volumes` and
    `labels` add to the base's. As in a Dockerfile, setting `entrypoint` drops an inherited `cmd`
    unless `cmd` is set too.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    """Variables to set: each replaces the base's value in place, or is appended."""
    entrypoint: Optional[Sequence[str]] = None
    cmd: Optional[Sequence[str]] = None
    working_dir: Optional[str] = None
    user: Optional[str] = None
    stop_signal: Optional[str] = None
    exposed_ports: Sequence[str] = ()
    """Added to the base's, e.g. `8443/tcp` (`/tcp` when no protocol is given)."""
    volumes: Sequence[str] = ()
    """Added to the base's: absolute paths in the image that hold data to keep out of the
    container's writable layer."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Set over the base's."""

    def to_json(self) -> Dict[str, Any]:
        value: Dict[str, Any] = {}
        if self.env:
            value["env"] = dict(self.env)
        if self.entrypoint is not None:
            value["entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            value["cmd"] = list(self.cmd)
        if self.working_dir is not None:
            value["working_dir"] = self.working_dir
        if self.user is not None:
            value["user"] = self.user
        if self.stop_signal is not None:
            value["stop_signal"] = self.stop_signal
        if self.exposed_ports:
            value["exposed_ports"] = list(self.exposed_ports)
        if self.volumes:
            value["volumes"] = list(self.volumes)
        if self.labels:
            value["labels"] = dict(self.labels)
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> ConfigChanges:
        fields = JsonFields(value, where)
        config = cls(
            env=fields.optional("env", dict, of=str) or {},
            entrypoint=fields.optional("entrypoint", list, of=str),
            cmd=fields.optional("cmd", list, of=str),
            working_dir=fields.optional("working_dir", str),
            user=fields.optional("user", str),
            stop_signal=fields.optional("stop_signal", str),
            exposed_ports=fields.optional("exposed_ports", list, of=str) or (),
            volumes=fields.optional("volumes", list, of=str) or (),
            labels=fields.optional("labels", dict, of=str) or {},
        )
        fields.no_others()
        return config


@dataclass(frozen=True)
class BaseImage:
    layout: str
    """An OCI image layout directory."""
    ref: Optional[str] = None
    """The image's `org.opencontainers.image.ref.name` in the layout; needed if it has several."""


@dataclass(frozen=True)
class LayerInput:
    descriptor: str
    """A layer descriptor JSON file (the blob itself is not an input of `assemble`)."""
    created_by: str
    """What made the layer, for the config's history; hashed, so no host paths."""


@dataclass(frozen=True)
class AppLayer:
    """The service's own files, which `assemble` writes as the image's top layer, under `/app`:
    without the build files, with bytecode for the base's Python. The files are the image's
    alone, so writing them in the assembly's process saves a process and a cache lookup per
    image, and the assembly runs whenever they change anyway."""

    directory: str
    """The directory of the files shipped under `/app`."""
    created_by: str
    python_version: str
    """The base's Python, e.g. `3.11.2`: bytecode is compiled only for the tool's own minor."""
    python_platform: str
    interpreter: str
    build_file_patterns: Sequence[str] = ()
    """File name patterns of build files, which never ship (Pants' `[GLOBAL].build_patterns`)."""

    def to_json(self) -> Dict[str, Any]:
        return {
            "directory": self.directory,
            "created_by": self.created_by,
            "python_version": self.python_version,
            "python_platform": self.python_platform,
            "interpreter": self.interpreter,
            "build_file_patterns": list(self.build_file_patterns),
        }

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> AppLayer:
        fields = JsonFields(value, where)
        app = cls(
            directory=fields.required("directory", str),
            created_by=fields.required("created_by", str),
            python_version=fields.required("python_version", str),
            python_platform=fields.required("python_platform", str),
            interpreter=fields.required("interpreter", str),
            build_file_patterns=fields.optional("build_file_patterns", list, of=str) or (),
        )
        fields.no_others()
        return app


@dataclass(frozen=True)
class ImageSpec:
    repository: str
    tags: Sequence[str]
    layers: Sequence[LayerInput]
    """Added on top of the base's layers, bottom first."""
    config: ConfigChanges = field(default_factory=ConfigChanges)
    base: Optional[BaseImage] = None
    platform: Optional[Platform] = None
    """The image's platform: required without a base; with one, it must match the base's."""
    created: Optional[int] = None
    """Seconds since the epoch; `None` lets the command choose (`SOURCE_DATE_EPOCH`, else 0)."""
    layer_inventories: Optional[Sequence[str]] = None
    """Every layer's records (`--out-inventory` of the command that wrote it), bottom first, the
    base's layers included and the app layer's left out (the assembly writes them); required
    when the image's user names an account or group, which must then be in the account files
    the layers leave, and for the image's inventory."""
    app: Optional[AppLayer] = None
    """The image's top layer, above `layers`, written by the assembly itself."""

    def to_json(self) -> Dict[str, Any]:
        value: Dict[str, Any] = {
            "repository": self.repository,
            "tags": list(self.tags),
            "layers": [
                {"descriptor": layer.descriptor, "created_by": layer.created_by}
                for layer in self.layers
            ],
            "config": self.config.to_json(),
        }
        if self.base is not None:
            value["base"] = {"layout": self.base.layout}
            if self.base.ref:
                value["base"]["ref"] = self.base.ref
        if self.platform is not None:
            value["platform"] = self.platform.to_json()
        if self.created is not None:
            value["created"] = self.created
        if self.layer_inventories is not None:
            value["layer_inventories"] = list(self.layer_inventories)
        if self.app is not None:
            value["app"] = self.app.to_json()
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> ImageSpec:
        fields = JsonFields(value, where)
        base = fields.optional("base", dict)
        platform = fields.optional("platform", dict)
        app = fields.optional("app", dict)
        spec = cls(
            repository=fields.required("repository", str),
            tags=fields.required("tags", list, of=str),
            layers=[
                _layer_input(layer, f"{where}: layers[{i}]")
                for i, layer in enumerate(fields.required("layers", list))
            ],
            config=ConfigChanges.from_json(
                fields.optional("config", dict) or {}, where=f"{where}: config"
            ),
            base=None if base is None else _base_from_json(base, f"{where}: base"),
            platform=(
                None
                if platform is None
                else Platform.from_json(platform, where=f"{where}: platform")
            ),
            created=fields.optional("created", int),
            layer_inventories=fields.optional("layer_inventories", list, of=str),
            app=None if app is None else AppLayer.from_json(app, where=f"{where}: app"),
        )
        fields.no_others()
        return spec


def _layer_input(value: Any, where: str) -> LayerInput:
    fields = JsonFields(value, where)
    layer = LayerInput(
        descriptor=fields.required("descriptor", str),
        created_by=fields.required("created_by", str),
    )
    fields.no_others()
    return layer


def _base_from_json(value: Any, where: str) -> BaseImage:
    fields = JsonFields(value, where)
    base = BaseImage(layout=fields.required("layout", str), ref=fields.optional("ref", str))
    fields.no_others()
    return base


class JsonFields:
    """Typed access to a JSON object's keys, remembering which were read."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a JSON object, got {value!r}.")
        self._value = value
        self._where = where
        self._read: set = set()

    def required(self, key: str, kind: type, *, of: Optional[type] = None) -> Any:
        if key not in self._value:
            raise SpecError(f"{self._where}: the key {key!r} is required.")
        return self.optional(key, kind, of=of)

    def optional(self, key: str, kind: type, *, of: Optional[type] = None) -> Any:
        self._read.add(key)
        value = self._value.get(key)
        if value is None:
            return None
        # bool is an int in Python, never in a spec.
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise SpecError(f"{self._where}: {key!r} must be {_JSON_NAMES[kind]}, got {value!r}.")
        items: List[Any] = (
            list(value.values())
            if isinstance(value, dict)
            else value if isinstance(value, list) else []
        )
        if of is not None and not all(isinstance(item, of) for item in items):
            raise SpecError(
                f"{self._where}: every item of {key!r} must be {_JSON_NAMES[of]}, got {value!r}."
            )
        return value

    def no_others(self) -> None:
        unknown = sorted(set(self._value) - self._read)
        if unknown:
            raise SpecError(
                f"{self._where}: unknown keys {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(self._read))}."
            )


_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
}
