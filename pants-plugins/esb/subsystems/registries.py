"""How builds reach container registries: `[esb-registries]`, for pulls of upstream bases and for
`publish`."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional

from pants.engine.addresses import Address
from pants.option.option_types import DictOption, FloatOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text, softwrap

from esb.repository_names import (
    DEFAULT_REPOSITORY,
    PLACEHOLDERS_HELP,
    REGISTRY_REPOSITORY_PLACEHOLDERS,
    REPOSITORY_PLACEHOLDERS,
    TARGET_REPOSITORY,
    fill_repository,
    template_problem,
)
from esb.target_types import EsbImageRegistriesField, EsbImageTagsField
from esb_contract import reference

_MIRROR = re.compile(r"^https?://[^/?#\s]+/?$")
_SETTINGS = ("ca_bundle", "insecure", "mirrors")
PATH_PLACEHOLDER = "<PATH>"
# Names of `[esb-registries].publish` entries, written `@alias` in a target's `registries`.
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PUBLISH_SETTINGS = (
    "address",
    "default",
    "skip_push",
    "repository",
    "extra_image_tags",
    "use_local_alias",
)
_SWITCHES = ("default", "skip_push", "use_local_alias")


class RegistrySettingsError(ValueError):
    pass


@dataclass(frozen=True)
class PushLimits:
    """How long `publish` waits for a registry: per request, and for a whole push (seconds)."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    deadline: float = 600.0


_DEFAULT_PUSH_LIMITS = PushLimits()


@dataclass(frozen=True)
class RegistrySettings:
    """One entry of `[esb-registries].registries`."""

    registry: str
    ca_bundle: Optional[str] = None
    insecure: bool = False
    mirrors: tuple[str, ...] = ()


def _settings_tables(
    value: Mapping[str, Any],
    option: str,
    known: tuple[str, ...],
    key_pattern: re.Pattern[str],
    bad_key: str,
    fix: str,
) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """The entries of a dict option of tables, as (key, table, how messages name the entry),
    sorted by key, each key matching `key_pattern` and each table holding only `known` keys."""
    for key, settings in sorted(value.items()):
        where = f"The entry {key!r} of `{option}`"
        if not key_pattern.fullmatch(key):
            raise RegistrySettingsError(f"{where} {bad_key}.\n\n{fix}")
        if not isinstance(settings, Mapping):
            raise RegistrySettingsError(
                f"{where} is {settings!r}, not a table of settings.\n\n{fix}"
            )
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise RegistrySettingsError(
                f"{where} has unknown settings {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(known)}.\n\n{fix}"
            )
        yield key, settings, where


def _strings(value: Any, valid: Callable[[str], bool]) -> bool:
    """Whether `value` is a list of strings that each pass `valid`."""
    return isinstance(value, (list, tuple)) and all(
        isinstance(item, str) and valid(item) for item in value
    )


def parse_registry_settings(value: Mapping[str, Any], option: str) -> tuple[RegistrySettings, ...]:
    """The entries of the `registries` option, checked, sorted by registry."""
    fix = (
        f'Fix: write each entry as `"host:port" = {{ ca_bundle = "path/to/ca.pem", insecure = '
        f'false, mirrors = ["https://mirror.example"] }}` in `{option}` (all three settings are '
        "optional)."
    )
    entries = []
    for registry, settings, where in _settings_tables(
        value,
        option,
        _SETTINGS,
        reference.REGISTRY,
        "does not name a registry as `host` or `host:port`",
        fix,
    ):
        ca_bundle = settings.get("ca_bundle")
        insecure = settings.get("insecure", False)
        mirrors = settings.get("mirrors", [])
        if ca_bundle is not None and (not isinstance(ca_bundle, str) or not ca_bundle):
            raise RegistrySettingsError(
                f"{where}: `ca_bundle` must be a path, got {ca_bundle!r}.\n\n{fix}"
            )
        if not isinstance(insecure, bool):
            raise RegistrySettingsError(
                f"{where}: `insecure` must be true or false, got {insecure!r}.\n\n{fix}"
            )
        if not _strings(mirrors, lambda mirror: bool(_MIRROR.match(mirror))):
            raise RegistrySettingsError(
                f"{where}: `mirrors` must be a list of URLs `https://host[:port]` (or `http://` for "
                f"a mirror that is itself listed as insecure), got {mirrors!r}.\n\n{fix}"
            )
        entries.append(
            RegistrySettings(registry, ca_bundle, insecure, tuple(m.rstrip("/") for m in mirrors))
        )
    return tuple(entries)


def helper_search_path(entries: tuple[str, ...], pants_path: Optional[str]) -> Optional[str]:
    """`PATH`-style directories for credential helpers; `<PATH>` is Pants' own `PATH`. None
    (no entries) leaves the image tool's `PATH`, which `[pex].executable_search_paths` sets."""
    if not entries:
        return None
    directories: list[str] = []
    for entry in entries:
        if entry == PATH_PLACEHOLDER:
            directories.extend(d for d in (pants_path or "").split(os.pathsep) if d)
        else:
            directories.append(entry)
    return os.pathsep.join(directories)


@dataclass(frozen=True)
class PublishRegistry:
    """One entry of `[esb-registries].publish`."""

    alias: str
    address: str
    """`host[:port]`, optionally followed by `/namespace` that prefixes every repository."""
    default: bool = False
    skip_push: bool = False
    """`publish` pushes nothing here (as Pants' `[docker].registries` entry of that name)."""
    repository: Optional[str] = None
    """The image's repository name here, a template that may use `{target_repository}`; None:
    the image's own."""
    extra_image_tags: tuple[str, ...] = ()
    """Tags (templates, as `image_tags`) that images get here besides their own."""
    use_local_alias: bool = False
    """`pants run` also names the image `<alias>/<repository>:<tag>` in the engine."""


def publish_address_problem(address: str) -> Optional[str]:
    """Why `address` is not a registry to publish to, `host[:port][/namespace]`; None if it is."""
    if "://" in address:
        return "it is a URL: write the registry as `host[:port]`, without a scheme"
    registry, _, namespace = address.partition("/")
    if not reference.REGISTRY.fullmatch(registry):
        return f"{registry!r} is not a registry `host` or `host:port`"
    bad = (
        [part for part in namespace.split("/") if not reference.PATH_COMPONENT.fullmatch(part)]
        if namespace
        else []
    )
    if bad:
        return (
            f"the namespace part(s) {', '.join(map(repr, bad))} are not lower-case letters and "
            "digits separated by '.', '_', '__' or '-'"
        )
    return None


def parse_publish_registries(value: Mapping[str, Any], option: str) -> tuple[PublishRegistry, ...]:
    """The entries of the `publish` option, checked, sorted by alias."""
    fix = (
        f'Fix: write each entry as `alias = {{ address = "host:port", default = true }}` in '
        f"`{option}` (`address` may end with a `/namespace`; `default`, `skip_push` and "
        "`use_local_alias` are optional, false; `repository` is an optional name such as "
        '`"team/{target_repository}"`; `extra_image_tags` an optional list of tags).'
    )
    entries = []
    for alias, settings, where in _settings_tables(
        value,
        option,
        _PUBLISH_SETTINGS,
        _ALIAS,
        "is not an alias: use letters, digits, '_', '.' and '-'",
        fix,
    ):
        address = settings.get("address")
        if not isinstance(address, str):
            raise RegistrySettingsError(f"{where} has no `address` string.\n\n{fix}")
        problem = publish_address_problem(address)
        if problem:
            raise RegistrySettingsError(f"{where}: `address` {address!r}: {problem}.\n\n{fix}")
        switches = {name: settings.get(name, False) for name in _SWITCHES}
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise RegistrySettingsError(
                    f"{where}: `{name}` must be true or false, got {value!r}.\n\n{fix}"
                )
        repository = settings.get("repository")
        if repository is not None and not isinstance(repository, str):
            naming_problem: Optional[str] = f"must be a string, got {repository!r}"
        else:
            naming_problem = repository and template_problem(
                repository, REGISTRY_REPOSITORY_PLACEHOLDERS
            )
        if naming_problem:
            raise RegistrySettingsError(f"{where}: `repository` {naming_problem}.\n\n{fix}")
        extra_tags = settings.get("extra_image_tags", [])
        if not _strings(extra_tags, EsbImageTagsField.is_valid):
            raise RegistrySettingsError(
                f"{where}: `extra_image_tags` must be a list of tags as `image_tags` takes them, "
                f"got {extra_tags!r}: {EsbImageTagsField.fix}\n\n{fix}"
            )
        entries.append(
            PublishRegistry(
                alias,
                address,
                repository=repository,
                extra_image_tags=tuple(extra_tags),
                **switches,
            )
        )
    return tuple(entries)


class RegistriesSubsystem(Subsystem):
    options_scope = "esb-registries"
    help = help_text(
        """
        How builds reach container registries: credentials, trust, plain HTTP and mirrors, for
        pulling `esb_base_image(upstream=...)` images.

        A pull is a cached step keyed by what it fetches (the pinned digest and platform) and by
        these settings as written (paths, not file contents, for files outside the repository);
        credentials never enter the key: the image tool reads them from the Docker config when
        it runs. See docs/upstream-bases.md.

        `publish` pushes images with the same credentials, CA bundles and plain-HTTP settings, to
        the registries its `publish` option names, within the `push_*` timeouts and deadline.
        See docs/publishing.md.
        """
    )

    _registries = DictOption[Any](
        default={},
        help=softwrap(
            """
            Settings per registry, keyed by `host[:port]` as references name it (`docker.io`
            for Docker Hub), e.g. in pants.toml:

                [esb-registries.registries."registry.example:5000"]
                ca_bundle = "certs/registry-ca.pem"
                insecure = false
                mirrors = ["https://mirror.example"]

            `ca_bundle`: a PEM file of CAs to trust for the registry besides the system's (as
            Docker's `certs.d/<registry>/ca.crt`): relative to the build root (its content then
            enters the pull's cache key), or absolute, or starting with `~/` (then its path
            does). `insecure`: reach the registry over plain HTTP. `mirrors`: URLs tried in
            order before the registry itself; a mirror is reached with the settings of its own
            `host[:port]` entry. Every blob is verified against its digest whichever server
            sends it.
            """
        ),
    )
    docker_config = StrOption(
        default=None,
        help=softwrap(
            """
            The Docker config file (`config.json`) whose `auths`, `credHelpers` and
            `credsStore` give registry credentials, as `docker login` writes them: an absolute
            path, or one starting with `~/`. Default: `$DOCKER_CONFIG/config.json` when Pants
            runs with `DOCKER_CONFIG` set, else `~/.docker/config.json` of the user running the
            build. The path is part of the pull's cache key (the default `~` path is the same on
            every machine); the file's content is not.
            """
        ),
    )
    _credential_helper_search_path = StrListOption(
        default=[],
        help=softwrap(
            f"""
            Directories to find `docker-credential-<helper>` programs in, for a Docker config
            that names credential helpers; `{PATH_PLACEHOLDER}` stands for the `PATH` Pants runs
            with. Default: the image tool's `PATH`, which `[pex].executable_search_paths` sets.
            These directories are part of the pull's cache key: keep them the same on every
            machine (prefer fixed directories to `{PATH_PLACEHOLDER}`) so that pulls are
            remote cache hits everywhere.
            """
        ),
        advanced=True,
    )

    _publish = DictOption[Any](
        default={},
        help=softwrap(
            """
            Registries `publish` pushes images to, by alias, e.g. in pants.toml:

                [esb-registries.publish.internal]
                address = "registry.example:5000"
                default = true

            `address`: `host[:port]`, optionally followed by a `/namespace` that prefixes every
            repository pushed there (`registry.example:5000/team` takes `esb/api` to
            `registry.example:5000/team/esb/api`). `default`: publish an image whose
            `registries` field is unset here. `skip_push`: push nothing here; `publish` says
            so for each image, and `package` still lists the registry in
            `<output>.docker-info.json`. `repository`: the image's repository name here
            instead of its own, which it may hold as `{target_repository}` besides the
            placeholders of the `repository` field (e.g. `repository = "team/{name}"`).
            `extra_image_tags`: tags images get here besides their `image_tags`, with the same
            placeholders. `use_local_alias`: `pants run` also names the image
            `<alias>/<repository>:<tag>` in the engine. All as in Pants' `[docker].registries`.
            A target names aliases as `@internal` in its `registries` field. The connection to
            each registry (CA bundle, plain HTTP) comes
            from its `host[:port]` entry in `registries`, credentials from the Docker config.
            """
        ),
    )

    _default_repository = StrOption(
        default=DEFAULT_REPOSITORY,
        help=softwrap(
            f"""
            The repository name of an image target whose `repository` field is unset, as Pants'
            `[docker].default_repository`: a name that may hold the placeholders
            {PLACEHOLDERS_HELP}, e.g. `default_repository = "esb/{{directory}}"`. The name is
            the image's on every registry (but one whose `publish` entry sets `repository`),
            in `pants run`'s engine, and in the image's metadata: a service's config names its
            base by it, so changing it changes the services' digests.
            """
        ),
    )

    _push_connect_timeout = FloatOption(
        default=_DEFAULT_PUSH_LIMITS.connect_timeout,
        help=softwrap(
            """
            Seconds `publish` waits for a registry to accept a connection (TCP and TLS
            handshake), for every request of a push.
            """
        ),
        advanced=True,
    )
    _push_read_timeout = FloatOption(
        default=_DEFAULT_PUSH_LIMITS.read_timeout,
        help=softwrap(
            """
            Seconds `publish` waits for each answer of a registry, or for more of one, for every
            request of a push. A request that times out is not retried: a registry that accepts
            connections and never answers fails the push after this long, naming the registry,
            the image and this option. Raise it for a registry that is slow to answer (e.g. one
            that copies large blobs into object storage before confirming an upload).
            """
        ),
        advanced=True,
    )
    _push_deadline = FloatOption(
        default=_DEFAULT_PUSH_LIMITS.deadline,
        help=softwrap(
            """
            Seconds one image's push to one registry may take in all: every request, upload
            and wait between retries. A push still running then stops (before its tags, if it
            has not reached them), naming the registry, the image and this option. Raise it to
            push large images over slow links.
            """
        ),
        advanced=True,
    )

    @property
    def push_limits(self) -> PushLimits:
        limits = PushLimits(
            self._push_connect_timeout, self._push_read_timeout, self._push_deadline
        )
        for field in dataclasses.fields(PushLimits):
            seconds = getattr(limits, field.name)
            if not 0 < seconds < float("inf"):
                raise RegistrySettingsError(
                    f"`[{self.options_scope}].push_{field.name}` is {seconds!r}.\n\nFix: set it "
                    f"to a positive number of seconds, e.g. `push_{field.name} = {field.default}` "
                    f"under `[{self.options_scope}]` in pants.toml."
                )
        return limits

    @classmethod
    def push_limit_setting(cls, limit: str) -> str:
        """How a user sets the `PushLimits` field `limit`, for the image tool's messages."""
        name = f"push_{limit}"
        flag = f"--{cls.options_scope}-{name}".replace("_", "-")
        return f"`{name}` in the `[{cls.options_scope}]` section of pants.toml (or `{flag}`)"

    @property
    def publish_registries(self) -> tuple[PublishRegistry, ...]:
        return parse_publish_registries(self._publish, f"[{self.options_scope}].publish")

    @property
    def default_repository(self) -> str:
        template = self._default_repository
        problem = template_problem(template, REPOSITORY_PLACEHOLDERS)
        if problem:
            raise RegistrySettingsError(
                f"`[{self.options_scope}].default_repository` is {template!r}: {problem}.\n\n"
                f'Fix: set it to a name such as `"esb/{{name}}"`, or remove it (default: '
                f"`{DEFAULT_REPOSITORY}`)."
            )
        return template

    @property
    def registries(self) -> tuple[RegistrySettings, ...]:
        return parse_registry_settings(self._registries, f"[{self.options_scope}].registries")

    @property
    def credential_helper_search_path(self) -> tuple[str, ...]:
        return tuple(self._credential_helper_search_path)

    def docker_config_path(self, docker_config_env: Optional[str]) -> Optional[str]:
        """The Docker config to pass to the image tool, or None for its default
        (`~/.docker/config.json` of the user running the build)."""
        if self.docker_config:
            if not (self.docker_config.startswith("/") or self.docker_config.startswith("~/")):
                raise RegistrySettingsError(
                    f"`[{self.options_scope}].docker_config` is {self.docker_config!r}, a relative "
                    "path.\n\nFix: give an absolute path, or one starting with `~/`, e.g. "
                    '`docker_config = "~/.docker/config.json"`.'
                )
            return self.docker_config
        if docker_config_env:
            return f"{docker_config_env.rstrip('/')}/config.json"
        return None


class PublishError(Exception):
    """A target or option that `publish` cannot act on; the message names it and the fix."""


@dataclass(frozen=True)
class PublishDestination:
    address: str
    """`host[:port]`, optionally with a `/namespace` that prefixes repositories."""
    entry: Optional[PublishRegistry] = None
    """The `[esb-registries].publish` entry named as `@alias`; None for an address."""

    @property
    def alias(self) -> Optional[str]:
        return self.entry.alias if self.entry else None

    @property
    def skip_push(self) -> bool:
        return bool(self.entry and self.entry.skip_push)

    @property
    def extra_image_tags(self) -> tuple[str, ...]:
        return self.entry.extra_image_tags if self.entry else ()

    @property
    def extra_tags_source(self) -> str:
        return f"`extra_image_tags` of {self.description}"

    def image_repository(self, repository: str, address: Address) -> str:
        """The repository name here of the image of the target at `address`, whose name is
        `repository` elsewhere."""
        if not (self.entry and self.entry.repository):
            return repository
        option = f"[{RegistriesSubsystem.options_scope}].publish.{self.entry.alias}"
        return fill_repository(
            self.entry.repository,
            address,
            f"The `repository` of `{option}`",
            f"change it so that it gives a valid name for every image published there, e.g. "
            f'`repository = "team/{{{TARGET_REPOSITORY}}}"`.',
            target_repository=repository,
        )

    @property
    def uses_local_alias(self) -> bool:
        return bool(self.entry and self.entry.use_local_alias)

    def local_alias(self, repository: str) -> Optional[str]:
        """The name `pants run` also gives the image, as `<alias>/<repository>`, when the entry
        asks for it."""
        return f"{self.alias}/{repository}" if self.uses_local_alias else None

    def path(self, repository: str) -> str:
        """`repository`'s path on the registry."""
        namespace = self.address.partition("/")[2]
        return f"{namespace}/{repository}" if namespace else repository

    def name(self, repository: str) -> str:
        return f"{self.address}/{repository}"

    @property
    def description(self) -> str:
        return f"@{self.alias} ({self.address})" if self.alias else self.address


def publish_destinations(
    field: EsbImageRegistriesField, address: Address, configured: tuple[PublishRegistry, ...]
) -> tuple[PublishDestination, ...]:
    """Where the `registries` field of the target at `address` says to push, each registry once;
    empty when the field is an empty list."""
    where = f"The `{field.alias}` field of the target {address}"
    option = f"[{RegistriesSubsystem.options_scope}].publish"
    aliases = {registry.alias: registry for registry in configured}
    if field.value is None:
        entries: tuple[str, ...] = tuple(f"@{r.alias}" for r in configured if r.default)
        if not entries:
            raise PublishError(
                f"The target {address} has no registry to publish to: its `{field.alias}` "
                f"field is unset and no entry of `{option}` has `default = true`.\n\nFix: add one "
                f"to pants.toml, e.g. `[{RegistriesSubsystem.options_scope}.publish.internal]` "
                'with `address = "registry.example:5000"` and `default = true`, or set '
                f'`{field.alias}=["registry.example:5000"]` on the target (`{field.alias}=[]` '
                "never publishes it)."
            )
    else:
        entries = field.value
    destinations: dict[str, PublishDestination] = {}
    for entry in entries:
        if entry.startswith("@"):
            registry = aliases.get(entry[1:])
            if registry is None:
                known = ", ".join(f"@{alias}" for alias in aliases) or "none"
                raise PublishError(
                    f"{where} names {entry!r}, which is no alias of `{option}` (known: {known})."
                    f"\n\nFix: add it to `{option}` in pants.toml, or correct the alias."
                )
            destination = PublishDestination(registry.address, registry)
        else:
            problem = publish_address_problem(entry)
            if problem:
                raise PublishError(
                    f'{where} has {entry!r}: {problem}.\n\nFix: write `"@alias"` for an alias '
                    f'of `{option}`, or an address `"host[:port][/namespace]"`, e.g. '
                    '`"registry.example:5000"`.'
                )
            destination = PublishDestination(entry)
        # An alias and its address both listed: one push.
        destinations.setdefault(destination.address, destination)
    return tuple(destinations.values())


def package_destinations(
    field: EsbImageRegistriesField, address: Address, configured: tuple[PublishRegistry, ...]
) -> tuple[PublishDestination, ...]:
    """Where `publish` would push the image, as `package` sees it: none when the `registries`
    field names none or has a problem. `publish` reports the problem for the target itself;
    `package` needs no registry, so it is not failed for one."""
    try:
        return publish_destinations(field, address, configured)
    except PublishError:
        return ()
