"""Targets of the esb backend: the shared base image and the service images built on it."""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import PurePosixPath
from typing import ClassVar, Iterable, Optional

from pants.core.goals.package import OutputPathField
from pants.engine.addresses import Address
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    AsyncFieldMixin,
    BoolField,
    Dependencies,
    DictStringToStringField,
    InvalidFieldException,
    MultipleSourcesField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.util.frozendict import FrozenDict
from pants.util.strutil import help_text

from esb.repository_names import (
    PLACEHOLDER,
    PLACEHOLDERS_HELP,
    REPOSITORY_PLACEHOLDERS,
    fill_repository,
    template_problem,
)
from esb_contract import reference
from esb_contract.architectures import PLATFORMS
from esb_contract.image_spec import ENV_NAME, PORT, Platform, SpecError

logger = logging.getLogger(__name__)

_NOT_REPOSITORY_CHARACTERS = re.compile(r"[^a-z0-9._-]+")
_SEPARATORS = re.compile(r"[._-]+")
# `{name}` in a tag: filled in once the image is built (see EsbImageTagsField).
TAG_PLACEHOLDER = PLACEHOLDER
CONTENT_PLACEHOLDERS = ("digest", "pants.hash")
"""The tag placeholders of the image's content hash, which no other image has."""
TAG_PLACEHOLDERS = (*CONTENT_PLACEHOLDERS, "git_commit", "version")


def names_content(tag: str) -> bool:
    """Whether `tag` holds a placeholder of the image's content hash."""
    return any(name in CONTENT_PLACEHOLDERS for name in TAG_PLACEHOLDER.findall(tag))


# Debian policy §5.6.7: lower case letters, digits, '+', '-', '.'; at least two characters.
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_ACCOUNT_NAME = r"[a-z_][a-z0-9_-]{0,31}"
_USER = re.compile(rf"^(?:{_ACCOUNT_NAME}|[0-9]+)(?::(?:{_ACCOUNT_NAME}|[0-9]+))?$")
_SERVICE_ACCOUNT = re.compile(rf"^{_ACCOUNT_NAME}:[0-9]+$")
# The stop signals a container engine can send: Linux's signal numbers by the names that Docker
# and containerd parse (their `SignalMap`; glibc's SIGRTMIN is 34). Fixed here rather than read
# from Python's `signal` module, whose numbers are the build host's (macOS has SIGUSR1 = 30).
_SIGRTMIN, _SIGRTMAX = 34, 64
_NUMBER = re.compile(r"^[0-9]+$")
# An extra's name (PEP 508), before PEP 685 normalisation.
_EXTRA = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
LINUX_SIGNALS: FrozenDict[str, int] = FrozenDict(
    {
        **{
            f"SIG{name}": number
            for number, names in enumerate(
                (
                    "HUP",
                    "INT",
                    "QUIT",
                    "ILL",
                    "TRAP",
                    "ABRT IOT",
                    "BUS",
                    "FPE",
                    "KILL",
                    "USR1",
                    "SEGV",
                    "USR2",
                    "PIPE",
                    "ALRM",
                    "TERM",
                    "STKFLT",
                    "CHLD CLD",
                    "CONT",
                    "STOP",
                    "TSTP",
                    "TTIN",
                    "TTOU",
                    "URG",
                    "XCPU",
                    "XFSZ",
                    "VTALRM",
                    "PROF",
                    "WINCH",
                    "IO POLL",
                    "PWR",
                    "SYS",
                ),
                start=1,
            )
            for name in names.split()
        },
        "SIGRTMIN": _SIGRTMIN,
        **{f"SIGRTMIN+{n}": _SIGRTMIN + n for n in range(1, 16)},
        **{f"SIGRTMAX-{n}": _SIGRTMAX - n for n in range(1, 15)},
        "SIGRTMAX": _SIGRTMAX,
    }
)
# Suspends the process instead of ending it, and cannot be handled: `docker stop` would wait
# out its grace period and kill the container.
_UNSTOPPING_SIGNAL = "SIGSTOP"

BASE_LOCK_FILE = "packages.lock.json"
TRUST_SCRIPT_FILE = "ensure_ca_trust.sh"
ENTRYPOINT_SCRIPT_FILE = "entrypoint.sh"
SERVICE_PYPROJECT_FILE = "pyproject.toml"
SERVICE_LOCK_FILE = "uv.lock"
# The build requirements, pinned with hashes, of what a service builds from source (sdist-only
# distributions, local packages, its own project); written by `pants esb-lock`, optional.
SERVICE_BUILD_CONSTRAINTS_FILE = "build-constraints.txt"
# The values of the `created` field of images.
CREATED_EPOCH = "epoch"
CREATED_COMMIT = "commit"
CREATED_CHOICES = (CREATED_EPOCH, CREATED_COMMIT)


def _invalid(field_alias: str, address: Address, problem: str, fix: str) -> InvalidFieldException:
    return InvalidFieldException(
        f"The `{field_alias}` field of the target {address} {problem}\n\nFix: {fix}"
    )


def repository_component_for(name: str) -> Optional[str]:
    """`name` as an OCI repository path component: lower case, each run of other characters
    and each separator run the grammar does not allow (e.g. `._`) made one `-`, separators at
    the ends dropped; None when nothing is left (e.g. `__`)."""
    mapped = _NOT_REPOSITORY_CHARACTERS.sub("-", name.lower())
    mapped = _SEPARATORS.sub(lambda m: m[0] if reference.SEPARATOR.fullmatch(m[0]) else "-", mapped)
    mapped = mapped.strip("._-")
    return mapped if reference.PATH_COMPONENT.fullmatch(mapped) else None


class _CheckedStringSequenceField(StringSequenceField):
    """A list of strings whose every item must pass `is_valid`; the error lists the bad ones."""

    invalid_items: ClassVar[str]
    """What the bad items are, e.g. "invalid tag(s)"."""
    fix: ClassVar[str]

    @staticmethod
    def is_valid(item: str) -> bool:
        raise NotImplementedError

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        bad = [item for item in value or () if not cls.is_valid(item)]
        if bad:
            raise _invalid(
                cls.alias, address, f"has {cls.invalid_items} {', '.join(map(repr, bad))}.", cls.fix
            )
        return value


class EsbImageRepositoryField(StringField, AsyncFieldMixin):
    alias = "repository"
    help = help_text(
        f"""
        The image's repository name, e.g. `esb/api`: the name under which `package` labels the
        image and `publish` pushes it (a registry prefix is added at publish time).

        May hold the placeholders {PLACEHOLDERS_HELP}, filled in lower case as Pants'
        `docker_image` does, e.g. `repository="esb/{{directory}}"`. Unset:
        `[esb-registries].default_repository`, by default the target's name. The name must
        follow the OCI distribution grammar: lower-case alphanumeric components separated by
        `.`, `_`, `__` or `-`, joined by `/`; a target whose name gives none (e.g. `_svc`) must
        set it.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        problem = value is not None and template_problem(value, REPOSITORY_PLACEHOLDERS)
        if problem:
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}: {problem}.",
                "use lower-case letters and digits, separated by '.', '_', '__' or '-', with '/' "
                'between components, e.g. `repository="esb/api"`.',
            )
        return value

    def image_repository(self, default_repository: str) -> str:
        """The image's repository name, given `[esb-registries].default_repository`."""
        if self.value is not None:
            return fill_repository(
                self.value,
                self.address,
                f"The `{self.alias}` field of the target {self.address}",
                'change it so that it gives a valid name, e.g. `repository="esb/{name}"`.',
            )
        name = self.address.target_name
        suggestion = repository_component_for(name) or "esb/<name>"
        return fill_repository(
            default_repository,
            self.address,
            f"The `{self.alias}` field of the target {self.address} is unset, so it comes from "
            "`[esb-registries].default_repository`, which",
            f'set the field, e.g. `{self.alias}="{suggestion}"`, or rename the target (or '
            "its directory).",
        )


class EsbImageTagsField(_CheckedStringSequenceField):
    alias = "image_tags"
    default = ("latest",)
    help = help_text(
        """
        Tags to give the image. The image's identity is its manifest digest, printed by `package`
        and recorded in `<output>.image.json`; tags are names for people.

        Each tag matches `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, and may hold placeholders that
        `publish` fills in: `{digest}` (the first 12 hex digits of the image's manifest digest),
        `{pants.hash}` (all 64 of them: the image's content hash, in the spelling of Pants'
        `docker_image`, whose hash of the build context it stands in for), `{git_commit}` (the
        full hash of the commit checked out) and `{version}` (a service's
        `[project].version` in its `pyproject.toml`), e.g. `image_tags=["latest",
        "sha-{digest}", "v{version}"]`. `package` gives the image only the tags without
        placeholders.
        """
    )

    invalid_items = "invalid tag(s)"
    fix = (
        "a tag starts with a letter, digit or '_', continues with letters, digits, '_', '.' or "
        "'-', and is at most 128 characters long; the placeholders `publish` fills in are "
        f"{', '.join(f'{{{name}}}' for name in TAG_PLACEHOLDERS)}."
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        names = TAG_PLACEHOLDER.findall(item)
        # The length is checked again once `publish` has filled the placeholders in.
        return all(name in TAG_PLACEHOLDERS for name in names) and bool(
            reference.TAG.fullmatch(TAG_PLACEHOLDER.sub("0", item))
        )

    def literal(self) -> tuple[str, ...]:
        """The tags without placeholders: those `package` gives the image."""
        return tuple(tag for tag in self.value or () if not TAG_PLACEHOLDER.search(tag))


class EsbImageRegistriesField(StringSequenceField):
    alias = "registries"
    help = help_text(
        """
        The registries `publish` pushes the image to: aliases of `[esb-registries].publish`
        written `"@alias"`, or addresses `"host[:port][/namespace]"`, e.g.
        `registries=["@internal", "registry.example:5000"]`. The image goes to
        `<address>/<repository>` with its `image_tags`.

        Unset: the aliases marked `default = true`. An empty list: `publish` skips the image.
        """
    )


class EsbImageSkipPushField(BoolField):
    alias = "skip_push"
    default = False
    help = help_text(
        """
        If true, `publish` does not push the image, and says so (as with Pants' `docker_image`);
        `package` builds it as usual. An empty `registries` list skips it too; `skip_push`
        keeps the registries it would go to, e.g. to pause pushing an image for a while.
        """
    )


class EsbImageEnvironmentField(DictStringToStringField):
    alias = "environment"
    help = help_text(
        """
        Environment variables baked into the image's config, e.g.
        `environment={"REQUIRE_CA_TRUST": "true"}`. A service image inherits its base's
        environment and overrides it key by key.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[dict[str, str]], address: Address
    ) -> Optional[FrozenDict[str, str]]:
        value = super().compute_value(raw_value, address)
        bad = sorted(name for name in value or {} if not ENV_NAME.fullmatch(name))
        if bad:
            raise _invalid(
                cls.alias,
                address,
                f"has invalid variable name(s) {', '.join(map(repr, bad))}.",
                "names start with a letter or '_' and continue with letters, digits or '_'.",
            )
        return value


class EsbImageLabelsField(DictStringToStringField):
    alias = "image_labels"
    help = help_text(
        """
        OCI labels for the image's config, e.g.
        `image_labels={"org.opencontainers.image.title": "api"}` (the name Pants' `docker_image`
        uses). A service image's labels are merged over its base's. Formerly `labels`, which
        still works for one release and logs a warning.
        """
    )


class EsbImageDeprecatedLabelsField(DictStringToStringField):
    alias = "labels"
    help = help_text(
        """
        Deprecated: the former name of `image_labels`, which behaves the same. It still works
        for one release, and logs a warning naming the target; rename it to `image_labels`.
        """
    )


_RENAMED_FIELDS = ((EsbImageDeprecatedLabelsField, EsbImageLabelsField),)
"""Fields under an old name, each with the field of its new name: kept for one release."""
_warned_renames: set[tuple[Address, str]] = set()
"""The targets, with the old field name, whose warning was logged in this process."""


def image_labels(target: Target) -> FrozenDict[str, str]:
    """The target's `image_labels`, or those it sets under the old name `labels`."""
    return (
        target[EsbImageLabelsField].value
        or target[EsbImageDeprecatedLabelsField].value
        or FrozenDict()
    )


class _ImageTarget(Target):
    """An image target: refuses a field set under both its old and new names, and warns, once per
    target, about one set under its old name."""

    def validate(self) -> None:
        super().validate()
        for old, new in _RENAMED_FIELDS:
            if self[old].value is None:
                continue
            if self[new].value is not None:
                raise InvalidFieldException(
                    f"The target {self.address} sets both `{old.alias}` and `{new.alias}`, two "
                    f"names of one field (`{old.alias}` is its former name).\n\nFix: remove "
                    f"`{old.alias}`, moving its entries into `{new.alias}`."
                )
            if (self.address, old.alias) not in _warned_renames:
                _warned_renames.add((self.address, old.alias))
                logger.warning(
                    f"The target {self.address} sets `{old.alias}`, the former name of "
                    f"`{new.alias}`; `{old.alias}` will be removed in the next release of the esb "
                    f"plugin. Rename it to `{new.alias}` in the BUILD file (or `__defaults__`): "
                    "it behaves the same."
                )


class EsbImageUserField(StringField):
    alias = "user"
    help = help_text(
        """
        The user the image's process runs as (OCI `User`): a name or uid, optionally with
        `:group` or `:gid`, e.g. `user="esb"`. Unset, an image inherits its base's (root for
        `esb_base_image`). The base defines the unprivileged accounts of its `service_accounts`
        field; the trust check works for them (it writes only under `/tmp`). A non-root
        service must listen on a port above 1023, e.g. 8443 instead of 443.

        A user or group name must be an account of the image: the build fails when the image's
        `/etc/passwd` (or `/etc/group`) lacks it, since no container of it could start. Add the
        account to the base's `service_accounts`, or use a numeric uid, which needs no entry.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and not _USER.match(value):
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, not a user name or uid with an optional `:group` or `:gid`.",
                'use e.g. `user="esb"`, `user="10001"` or `user="10001:10001"`.',
            )
        return value


class EsbImageStopSignalField(StringField):
    alias = "stop_signal"
    help = help_text(
        """
        The signal `docker stop` sends (OCI `StopSignal`), e.g. `"SIGTERM"`. `esb_base_image`
        defaults to `SIGINT`: a Python process that is PID 1 ignores SIGTERM unless it installs
        a handler, but always handles SIGINT (as `KeyboardInterrupt`), so services stop at once
        instead of being killed after docker's 10 s grace period. Unset on a service image,
        the base's value is inherited.

        A Linux signal name as container engines know it (`SIGTERM`, `SIGINT`, `SIGQUIT`,
        `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGWINCH`, ..., `SIGRTMIN`, `SIGRTMIN+1` to
        `SIGRTMIN+15`, `SIGRTMAX-14` to `SIGRTMAX-1`, `SIGRTMAX`), or its number from 1 to 64.
        `SIGSTOP` is refused: it suspends the process instead of stopping it.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        number = int(value) if _NUMBER.match(value) else LINUX_SIGNALS.get(value)
        if number == LINUX_SIGNALS[_UNSTOPPING_SIGNAL]:
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}: {_UNSTOPPING_SIGNAL} suspends the process instead of ending it "
                "and cannot be handled, so `docker stop` would wait out its grace period and "
                "then kill the container.",
                'use the signal the service handles to shut down, e.g. `"SIGTERM"` or `"SIGINT"`.',
            )
        if number is None or not 0 < number <= _SIGRTMAX:
            canonical = "SIG" + value.upper().removeprefix("SIG")
            suggestion = f'`"{canonical}"`, or ' if canonical in LINUX_SIGNALS else ""
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, which is not a Linux signal that container engines know, so "
                "`docker stop` could not send it and would kill the container.",
                f'use {suggestion}a signal name such as `"SIGTERM"`, `"SIGINT"`, '
                '`"SIGQUIT"`, `"SIGHUP"`, `"SIGUSR1"`, `"SIGWINCH"` or `"SIGRTMIN+3"`, or its '
                "number from 1 to 64.",
            )
        return value


class EsbBaseStopSignalField(EsbImageStopSignalField):
    default = "SIGINT"


class EsbImageOutputPathField(OutputPathField):
    help = help_text(
        """
        Where `package` writes the image, relative to `--distdir` (default `dist/`), without a
        file ending: `<output_path>.image.json` (metadata: digest, config digest, repository, tags,
        layers), `<output_path>.inventory.json` (its packages), `<output_path>.docker-info.json`
        (its ID and the names `publish` gives it, as Pants' `docker_image` writes them) and
        `<output_path>.oci/` (an OCI
        image layout that `docker load` also reads once tarred with its links followed, e.g.
        `tar -ch -C dist/services.api/api.oci . | docker load`). The layout's `blobs` is a link
        to `dist/blobs/`, which holds every packaged image's blobs once.

        Defaults to the BUILD file's path with dots for slashes, then the target name, e.g.
        `services.api/api`. A path of your own must stay inside `--distdir`: relative, without
        `..`, `.` or empty components (`a//b`, a trailing `/`).
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        parts = value.split("/")
        if value.startswith("/"):
            problem = "an absolute path"
        elif ".." in parts:
            problem = "a path that leaves the dist directory through `..`"
        elif "" in parts or "." in parts:
            problem = "not a normalized path (it has an empty or `.` component)"
        else:
            return value
        default = cls(None, address).value_or_default(file_ending=None)
        raise _invalid(
            cls.alias,
            address,
            f"is {value!r}, {problem}. `package` writes an image only inside the dist "
            "directory (`--distdir`, default `dist/`), at this path with `.oci`, `.image.json`, "
            "`.inventory.json` and `.docker-info.json` appended.",
            "give a relative path without `..`, `.` or empty components, e.g. "
            f'`{cls.alias}="{default}"` (the default, also had by removing the field).',
        )


class EsbImageCreatedField(StringField):
    alias = "created"
    valid_choices = CREATED_CHOICES
    default = CREATED_EPOCH
    value: str
    help = help_text(
        f"""
        The image's creation time (the config's and its history's `created`, which
        `docker images` shows as CREATED): `"{CREATED_EPOCH}"` (the default), 1970-01-01
        00:00:00 UTC; or `"{CREATED_COMMIT}"`, the committer time of the commit checked out at
        the build root (`git log -1 --format=%ct HEAD`), or `$SOURCE_DATE_EPOCH` when that is
        set. Set it once for a repository with `__defaults__`, e.g.
        `__defaults__({{(esb_base_image, esb_service_image): dict(created="commit")}})`.

        Both keep builds reproducible, but `"{CREATED_COMMIT}"` makes the image's digest change
        with every commit, even one that changes nothing in the image: such an image gets a new
        digest and `publish` pushes it again, and the assembly step (not the layers, which stay
        shared) misses the remote cache across commits. `"{CREATED_EPOCH}"` keeps the digest of
        an unchanged image the same across commits. A build with `"{CREATED_COMMIT}"` needs a
        git checkout with a commit, or `SOURCE_DATE_EPOCH`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        # Before Pants' own check, whose message has no fix.
        if raw_value is not None and raw_value not in CREATED_CHOICES:
            raise _invalid(
                cls.alias,
                address,
                f"is {raw_value!r}, not one of {', '.join(map(repr, CREATED_CHOICES))}.",
                f'set `{cls.alias}="{CREATED_EPOCH}"` (the default: 1970-01-01) or '
                f'`{cls.alias}="{CREATED_COMMIT}"` (the time of the commit checked out).',
            )
        value = super().compute_value(raw_value, address)
        assert value is not None, f"{cls.alias} has a default"
        return value

    @property
    def from_commit(self) -> bool:
        return self.value == CREATED_COMMIT


class EsbImageDependenciesField(Dependencies):
    help = help_text(
        """
        Extra dependencies. Leave empty in the normal case: a service image depends on its
        `base` and on the files of its own directory, and those dependencies are added for you.
        """
    )


_COMMON_IMAGE_FIELDS = (
    *COMMON_TARGET_FIELDS,
    EsbImageRepositoryField,
    EsbImageTagsField,
    EsbImageRegistriesField,
    EsbImageSkipPushField,
    EsbImageEnvironmentField,
    EsbImageLabelsField,
    EsbImageDeprecatedLabelsField,
    EsbImageOutputPathField,
    EsbImageDependenciesField,
    EsbImageUserField,
    EsbImageCreatedField,
)


# -----------------------------------------------------------------------------------------------
# esb_base_image
# -----------------------------------------------------------------------------------------------


class EsbBaseSourcesField(MultipleSourcesField):
    script_files: ClassVar[tuple[str, ...]] = (TRUST_SCRIPT_FILE, ENTRYPOINT_SCRIPT_FILE)
    required_files: ClassVar[tuple[str, ...]] = (BASE_LOCK_FILE, *script_files)
    """With `packages`; with `upstream`, only `script_files` (and no lock)."""
    default = required_files
    expected_num_files = range(2, 4)
    help = help_text(
        f"""
        The base's own files, all in the BUILD file's directory: `{TRUST_SCRIPT_FILE}`
        (installed as `/usr/local/bin/{TRUST_SCRIPT_FILE}`), `{ENTRYPOINT_SCRIPT_FILE}`
        (installed as `/usr/local/bin/{ENTRYPOINT_SCRIPT_FILE}`, the entrypoint of every image
        built on this base) and, for a base assembled from `packages`, `{BASE_LOCK_FILE}` (the
        Debian packages, pinned by URL and sha256, that make the root filesystem; written by
        `pants esb-lock`). A base on an `upstream` image has no `{BASE_LOCK_FILE}`.
        """
    )


class EsbBasePackagesField(_CheckedStringSequenceField):
    alias = "packages"
    help = help_text(
        f"""
        The Debian 12 (bookworm) packages to install, e.g.
        `packages=["python3", "ca-certificates", "bash", "coreutils"]`. `pants esb-lock` resolves
        them and their dependencies to exact versions and writes `{BASE_LOCK_FILE}`; `package`
        fails when this list and the lock disagree.

        A base sets either `packages` or `upstream`, not both.
        """
    )

    invalid_items = "invalid Debian package name(s)"
    fix = (
        "Debian package names use lower-case letters, digits, '+', '-' and '.', and are at "
        "least two characters long (e.g. `python3`, `libpq5`)."
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        return bool(_DEBIAN_PACKAGE.match(item))

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if value and len(set(value)) != len(value):
            raise _invalid(
                cls.alias, address, "lists a package more than once.", "remove the duplicates."
            )
        return value


class EsbBaseUpstreamField(StringField):
    alias = "upstream"
    help = help_text(
        f"""
        An image to build the base on instead of Debian packages, pinned by digest, e.g.
        `upstream="python:3.12-slim-bookworm@sha256:<64 hex digits>"` or
        `upstream="registry.example:5000/base/python:3.12@sha256:<64 hex digits>"`.

        The image is pulled through the OCI distribution API (credentials from the Docker
        config, registry CAs, insecure registries and mirrors from `[esb-registries]`), every
        blob verified against its digest, and cached by content: the digest decides what is
        pulled, so the pull is an ordinary cached step. The base is that image plus the
        trust/tools layer (and the `service_accounts`), with this target's `environment`,
        `image_labels`, `user` and `stop_signal` and the entrypoint
        `/usr/local/bin/{ENTRYPOINT_SCRIPT_FILE}`. Services on it are installed for the
        image's own Python, read from the image (the official python images' `/usr/local/bin`,
        or Debian's `/usr/bin`). A reference without a digest is refused, with the command
        that finds the digest.

        A base sets either `upstream` or `packages`, not both; with `upstream` there is no
        `{BASE_LOCK_FILE}`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is not None and (not value.strip() or value != value.strip()):
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, not an image reference.",
                "write `[registry/]repository[:tag]@sha256:<digest>`, e.g. "
                '`upstream="python:3.12-slim-bookworm@sha256:<64 hex digits>"`.',
            )
        return value


class EsbBaseUpstreamPlatformField(StringField):
    alias = "upstream_platform"
    help = help_text(
        """
        The one platform of the `upstream` image to build on, `os/architecture[/variant]`, when
        its digest pins a multi-platform index (as the official images' tags do): the index's
        image for this platform is pulled, and its own platform must match. The same as
        `platforms=[<it>]`, but with a variant if need be; a base sets one of the two. Without
        either, an upstream base is built for `linux/amd64`.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> Optional[str]:
        value = super().compute_value(raw_value, address)
        if value is None:
            return None
        try:
            platform: Optional[Platform] = Platform.parse(value)
        except SpecError:
            platform = None
        if platform is None or platform.os != "linux":
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, not a Linux platform `linux/architecture[/variant]`.",
                'use e.g. `upstream_platform="linux/amd64"` or `"linux/arm64/v8"`.',
            )
        return value


class EsbBasePlatformsField(StringSequenceField):
    alias = "platforms"
    default = ("linux/amd64",)
    help = help_text(
        f"""
        The platforms the base, and every image on it, is built for, each
        `linux/<architecture>`: one of {', '.join(f'`{p}`' for p in sorted(PLATFORMS))}.
        For a base built from `packages`, `pants esb-lock` pins the packages of each in
        `{BASE_LOCK_FILE}`, resolved against that architecture's index; for a base on an
        `upstream` image, each platform's image is pulled from the index its digest pins. The
        images on the base are built from each platform's `.deb`s and wheels: nothing runs
        under emulation. Several platforms make every image an OCI image index.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address) or ()
        known = ", ".join(f'"{p}"' for p in sorted(PLATFORMS))
        bad = [item for item in value if item not in PLATFORMS]
        if bad:
            raise _invalid(
                cls.alias,
                address,
                f"has {', '.join(map(repr, bad))}, which this plugin cannot build a Debian base for.",
                f"list platforms among {known}.",
            )
        if not value or len(set(value)) != len(value):
            raise _invalid(
                cls.alias,
                address,
                f"is {list(value)!r}: a base needs each platform once, and at least one.",
                'list each platform once, e.g. `platforms=["linux/amd64"]`.',
            )
        return value


class EsbBaseDebianSourcesField(_CheckedStringSequenceField):
    alias = "debian_sources"
    default = (
        "https://deb.debian.org/debian bookworm main",
        "https://deb.debian.org/debian bookworm-updates main",
        "https://deb.debian.org/debian-security bookworm-security main",
    )
    help = help_text(
        """
        The Debian archive suites `pants esb-lock` resolves `packages` against, each as
        `"<archive URL> <suite> <component>..."`, highest priority first. Their `Release` files
        must be signed by the Debian archive keyring. Builds never read these: they download
        only the `.deb` URLs pinned in the lock.
        """
    )

    invalid_items = "malformed source(s)"
    fix = (
        'write each source as "<archive URL> <suite> <component>...", e.g. '
        '"https://deb.debian.org/debian bookworm main".'
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        return len(item.split()) >= 3 and item.startswith(("https://", "http://"))


class EsbBaseServiceAccountsField(_CheckedStringSequenceField):
    alias = "service_accounts"
    default = ("esb:10001",)
    help = help_text(
        """
        Unprivileged accounts the base defines, as `name:uid` (each gets a group of the same
        name and id, no password, no login shell, home `/nonexistent`), for service images to
        run as with `user="<name>"`. Uids from 1000 to 59999.
        """
    )

    invalid_items = "invalid account(s)"
    fix = (
        'write each as `"name:uid"` with a lower-case name and a uid from 1000 to 59999, e.g. '
        '`"esb:10001"`.'
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        return bool(_SERVICE_ACCOUNT.match(item)) and 1000 <= int(item.split(":")[1]) <= 59999


class EsbBaseImageTarget(_ImageTarget):
    alias = "esb_base_image"
    core_fields = (
        *_COMMON_IMAGE_FIELDS,
        EsbBaseSourcesField,
        EsbBasePackagesField,
        EsbBaseUpstreamField,
        EsbBaseUpstreamPlatformField,
        EsbBasePlatformsField,
        EsbBaseDebianSourcesField,
        EsbBaseServiceAccountsField,
        EsbBaseStopSignalField,
    )
    help = help_text(
        f"""
        The shared base image (`esb-service-base`) that every `esb_service_image` builds on:
        Debian 12 assembled without a daemon from the `.deb` packages pinned in
        `{BASE_LOCK_FILE}` (`packages`), or an `upstream` image pinned by digest, plus the trust
        contract (`/usr/local/bin/{TRUST_SCRIPT_FILE}`, `/usr/local/bin/{ENTRYPOINT_SCRIPT_FILE}`).

        Example BUILD:

            esb_base_image(
                name="esb-service-base",
                packages=["python3", "ca-certificates", "bash", "coreutils", "openssl"],
                environment={{"SSL_CERT_DIR": "/etc/esb/ca-certificates"}},
            )

        or, on an upstream image:

            esb_base_image(
                name="esb-service-base",
                upstream="python:3.12-slim-bookworm@sha256:<64 hex digits>",
            )

        `pants package base:esb-service-base` writes the image to `dist/`; every service image
        records the digest of the base it was built on.
        """
    )

    def validate(self) -> None:
        super().validate()
        packages = self[EsbBasePackagesField].value
        upstream = self[EsbBaseUpstreamField].value
        if packages is not None and upstream is not None:
            raise InvalidFieldException(
                f"The target {self.address} sets both `{EsbBasePackagesField.alias}` and "
                f"`{EsbBaseUpstreamField.alias}`: a base is either assembled from Debian packages "
                "or built on an upstream image.\n\nFix: remove one of the two fields (with "
                f"`{EsbBaseUpstreamField.alias}`, also delete {BASE_LOCK_FILE})."
            )
        if packages is None and upstream is None:
            raise InvalidFieldException(
                f"The target {self.address} sets neither `{EsbBasePackagesField.alias}` nor "
                f"`{EsbBaseUpstreamField.alias}`, so it has no root file system.\n\nFix: set "
                f'`{EsbBasePackagesField.alias}=["python3", "ca-certificates", ...]` (then run '
                f"`pants esb-lock {self.address}`), or "
                f'`{EsbBaseUpstreamField.alias}="python:3.12-slim-bookworm@sha256:<digest>"`.'
            )
        upstream_platform = self[EsbBaseUpstreamPlatformField].value
        if upstream_platform is not None and upstream is None:
            raise InvalidFieldException(
                f"The target {self.address} sets `{EsbBaseUpstreamPlatformField.alias}`, the "
                f"platform to take from an `{EsbBaseUpstreamField.alias}` image, but it is built "
                f"from `{EsbBasePackagesField.alias}`.\n\nFix: set "
                f'`{EsbBasePlatformsField.alias}=["{upstream_platform}"]` instead.'
            )
        platforms_set = self[EsbBasePlatformsField].value != EsbBasePlatformsField.default
        if upstream_platform is not None and platforms_set:
            raise InvalidFieldException(
                f"The target {self.address} sets both `{EsbBasePlatformsField.alias}` and "
                f"`{EsbBaseUpstreamPlatformField.alias}`, which say the same thing.\n\nFix: "
                f"remove `{EsbBaseUpstreamPlatformField.alias}` and list every platform in "
                f"`{EsbBasePlatformsField.alias}`."
            )

    def platforms(self) -> tuple[Platform, ...]:
        """The platforms the base, and every image on it, is built for, in the order its
        fields give them."""
        one = self[EsbBaseUpstreamPlatformField].value
        names = (one,) if one is not None else self[EsbBasePlatformsField].value or ()
        return tuple(Platform.parse(name) for name in names)

    def architectures(self) -> tuple[str, ...]:
        """The OCI (and Debian) architecture of each platform, in order."""
        return tuple(platform.architecture for platform in self.platforms())


# -----------------------------------------------------------------------------------------------
# esb_service_image
# -----------------------------------------------------------------------------------------------


class EsbServiceBaseField(StringField, AsyncFieldMixin):
    alias = "base"
    value: str
    required = True
    help = help_text(
        """
        The address of the `esb_base_image` target this service image builds on, e.g.
        `base="//base:esb-service-base"`. The service's venv is installed for that base's Python
        version and platform, and the image records the base's digest. Not empty.
        """
    )

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        assert value is not None, f"{cls.alias} has a default or is required"
        # Pants reads an empty address as this target itself.
        if not value.strip():
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, which names no target.",
                f"set `{cls.alias}` to the address of an `esb_base_image` target, e.g. "
                '`base="//base:esb-service-base"` (`pants list --filter-target-type='
                "esb_base_image ::` lists them).",
            )
        return value


class EsbServiceSourcesField(MultipleSourcesField):
    required_files: ClassVar[tuple[str, ...]] = (SERVICE_PYPROJECT_FILE, SERVICE_LOCK_FILE)
    default = (*required_files, SERVICE_BUILD_CONSTRAINTS_FILE, "src/**/*.py")
    help = help_text(
        f"""
        The service's files, all inside its own directory: its uv project (`{SERVICE_PYPROJECT_FILE}`
        and `{SERVICE_LOCK_FILE}`, both required, at the directory's top) and the files shipped in
        the image under `/app` (by default the Python modules under `src/`). `{SERVICE_LOCK_FILE}`
        is installed into `/.venv`, and `/app/src` (`/app` without a `src/` directory) is put on
        the venv's `sys.path`. When `{SERVICE_PYPROJECT_FILE}` has a `[build-system]`, the
        service's own project is also built from these files and installed into `/.venv`: select
        what its build reads (e.g. `README.md`). BUILD files never ship.
        `{SERVICE_BUILD_CONSTRAINTS_FILE}` (written by `pants esb-lock` when the service builds
        anything from source, e.g. a dependency published only as an sdist) pins the build
        requirements; keep it selected when you set this field. A member of
        a uv workspace has no `{SERVICE_LOCK_FILE}` of its own: the workspace root's is used
        (docs/uv-locks.md#workspaces). Globs may not
        leave the directory (`../`, absolute paths). Caches, VCS and editor files and tests never
        enter the image, whatever the globs select (see `ship_tests`).
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        # Before Pants' own check, whose message does not say why or what to do.
        leaving = [
            glob
            for glob in raw_value or ()
            if isinstance(glob, str)
            and (posixpath.isabs(glob.lstrip("!")) or ".." in PurePosixPath(glob.lstrip("!")).parts)
        ]
        if leaving:
            raise _invalid(
                cls.alias,
                address,
                f"has glob(s) that leave the service's directory {address.spec_path or '.'}/: "
                f"{', '.join(map(repr, leaving))}. A service image's inputs are its own "
                "directory, its base and its lock's packages.",
                f"select only files under {address.spec_path or '.'}/ (move or copy what the "
                "image needs there; for code shared by services, see docs/context-rule.md).",
            )
        return super().compute_value(raw_value, address)


class EsbServiceShipTestsField(BoolField):
    alias = "ship_tests"
    default = False
    help = help_text(
        """
        Ship test files in the image: `tests/` and `test/` directories, `test_*.py`,
        `*_test.py` and `conftest.py`. By default they are left out even when `sources` selects
        them.
        """
    )


class EsbServiceAllowedSecretsField(StringSequenceField):
    alias = "allowed_secrets"
    help = help_text(
        """
        Files that look like secrets but may ship, as globs relative to the service's
        directory, e.g. `["src/esb_api/testdata/fake_key.pem"]`. Without an entry here, a
        selected file named like a secret (`.env*`, `*.key`, `id_rsa`, `*.p12`, `.netrc`,
        `credentials*.json`, ...) or holding a private key (`-----BEGIN ... PRIVATE KEY-----`)
        fails the build, naming the file.
        """
    )


class EsbServiceCommandField(StringSequenceField):
    alias = "command"
    required = True
    help = help_text(
        """
        The image's default command (OCI `Cmd`), run by the base's entrypoint after the CA trust
        check, e.g. `command=["python", "-m", "esb_api"]`. `python` is the venv's interpreter
        (`/.venv/bin` comes first on `PATH`). Not empty, and its first item is the program to
        run: an image without a command cannot start.
        """
    )

    @classmethod
    def compute_value(
        cls, raw_value: Optional[Iterable[str]], address: Address
    ) -> Optional[tuple[str, ...]]:
        value = super().compute_value(raw_value, address)
        if value is not None and (not value or not value[0].strip()):
            raise _invalid(
                cls.alias,
                address,
                f"is {list(value)!r}, "
                + ("empty" if not value else "whose first item, the program to run, is blank")
                + ": the image would have no program to start, and every `docker run` of it "
                "would fail.",
                f'give the program and its arguments, e.g. `{cls.alias}=["python", "-m", '
                '"esb_api"]`.',
            )
        return value


class EsbServiceWorkdirField(StringField):
    alias = "workdir"
    value: str
    default = "/app"
    help = "The working directory of the service's process (OCI `WorkingDir`); an absolute path."

    @classmethod
    def compute_value(cls, raw_value: Optional[str], address: Address) -> str:
        value = super().compute_value(raw_value, address)
        assert value is not None, f"{cls.alias} has a default or is required"
        if not value.startswith("/"):
            raise _invalid(
                cls.alias,
                address,
                f"is {value!r}, a relative path.",
                f'use an absolute path inside the image, e.g. `workdir="/{value}"`.',
            )
        return value


class EsbServicePortsField(_CheckedStringSequenceField):
    alias = "ports"
    default = ()
    help = help_text(
        """
        Ports the service listens on (OCI `ExposedPorts`), as `"8080"` or `"8080/tcp"`
        (`tcp`, `udp` or `sctp`). Prefer ports above 1023 so that the service can run as a
        non-root user.
        """
    )

    invalid_items = "invalid port(s)"
    fix = (
        'give a number from 1 to 65535, optionally with "/tcp", "/udp" or "/sctp", e.g. '
        '`ports=["8080/tcp"]`.'
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        match = PORT.fullmatch(item)
        return match is not None and 0 < int(match["port"]) < 65536

    def normalized(self) -> tuple[str, ...]:
        return tuple(port if "/" in port else f"{port}/tcp" for port in self.value or ())


class EsbServiceVolumesField(_CheckedStringSequenceField):
    alias = "volumes"
    default = ()
    help = help_text(
        """
        Directories of the image that hold data to keep out of the container's writable layer
        (OCI `Volumes`), as absolute paths, e.g. `volumes=["/data"]`: the engine mounts a volume
        there for each container unless one is given.
        """
    )

    invalid_items = "relative or empty path(s)"
    fix = 'give absolute paths in the image, e.g. `volumes=["/data"]`.'

    @staticmethod
    def is_valid(item: str) -> bool:
        return item.startswith("/") and "\0" not in item


class EsbServiceExtrasField(_CheckedStringSequenceField):
    alias = "extras"
    default = ()
    help = help_text(
        f"""
        Optional-dependency groups (`[project.optional-dependencies]` of the service's
        `{SERVICE_PYPROJECT_FILE}`) to install too, as `pip install ".[name]"` would, e.g.
        `extras=["server"]` for a project that keeps its production server (gunicorn, uvicorn)
        in an extra. They come from the same `{SERVICE_LOCK_FILE}`, which locks every extra.
        """
    )

    invalid_items = "invalid extra name(s)"
    fix = (
        'give the names as `[project.optional-dependencies]` spells them, e.g. `extras=["server"]`.'
    )

    @staticmethod
    def is_valid(item: str) -> bool:
        return bool(_EXTRA.match(item))


class EsbServiceImageTarget(_ImageTarget):
    alias = "esb_service_image"
    core_fields = (
        *_COMMON_IMAGE_FIELDS,
        EsbServiceBaseField,
        EsbServiceSourcesField,
        EsbServiceCommandField,
        EsbServiceWorkdirField,
        EsbServicePortsField,
        EsbServiceVolumesField,
        EsbServiceExtrasField,
        EsbImageStopSignalField,
        EsbServiceShipTestsField,
        EsbServiceAllowedSecretsField,
    )
    help = help_text(
        f"""
        A service's production image: the `base` image, then `/usr/local/bin/uv`, then the
        service's `{SERVICE_LOCK_FILE}` installed into `/.venv`, then the service's own files under
        `/app`, each a separate, cached layer. Built without a Docker daemon; the same inputs
        give the same digest on any machine.

        Example BUILD (in `services/api/`):

            esb_service_image(
                name="api",
                base="//base:esb-service-base",
                repository="esb/api",
                command=["python", "-m", "esb_api"],
                ports=["8080/tcp"],
            )
        """
    )
