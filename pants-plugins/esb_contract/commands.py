"""The image tool's subcommands: the names the backend runs them under and the tool's CLI
registers them under, and the flags each takes.

The tool's parser declares exactly these flags per command (its CLI test checks), and every argv
the backend builds is read with `read_argv` before it runs, so a flag one half adds, drops or
repeats where the other does not fails at once, naming the command and the flag.
"""

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Mapping, Sequence, Tuple

from esb_contract import flags

ACCOUNTS_LAYER = "accounts-layer"
ASSEMBLE = "assemble"
BASE_LIBRARIES = "base-libraries"
CHECK_NATIVE = "check-native"
DEBIAN_CHECK_LOCK = "debian-check-lock"
DEBIAN_LOCK = "debian-lock"
DEBIAN_ROOTFS = "debian-rootfs"
DISTRIBUTION_LAYER = "distribution-layer"
EXPORT_LOCK = "export-lock"
IMAGE_INDEX = "image-index"
IMAGE_PLATFORM = "image-platform"
LAYER_FROM_DIR = "layer-from-dir"
LAYER_INVENTORIES = "layer-inventories"
MERGE_LAYERS = "merge-layers"
PROJECT_LAYER = "project-layer"
PULL_IMAGE = "pull-image"
PUSH_IMAGE = "push-image"
RUN_IMAGE = "run-image"
SDIST_WHEEL = "sdist-wheel"
UV_LAYER = "uv-layer"
UV_LOCK = "uv-lock"
VENV_LAYER = "venv-layer"


@dataclass(frozen=True)
class Arguments:
    """Flags, by how the tool's parser takes them. Every flag but a switch takes one value
    after it; a repeated flag may be given any number of times, any other at most once."""

    required: FrozenSet[str] = frozenset()
    optional: FrozenSet[str] = frozenset()
    switches: FrozenSet[str] = frozenset()
    """Optional flags that take no value."""
    repeated: FrozenSet[str] = frozenset()

    def __or__(self, other: "Arguments") -> "Arguments":
        required = self.required | other.required
        return Arguments(
            required,
            (self.optional | other.optional) - required,
            self.switches | other.switches,
            self.repeated | other.repeated,
        )

    @property
    def takes(self) -> FrozenSet[str]:
        return self.required | self.optional | self.switches


def arguments(
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
    switches: Iterable[str] = (),
    repeated: Iterable[str] = (),
) -> Arguments:
    return Arguments(
        frozenset(required), frozenset(optional), frozenset(switches), frozenset(repeated)
    )


# The groups the tool's parsers share (each added by one helper of the tool's).
LAYER_OUTPUT = arguments(
    required={flags.OUT_BLOB, flags.OUT_DESCRIPTOR}, optional={flags.MTIME, flags.OUT_INVENTORY}
)
TARGET_PYTHON = arguments(required={flags.INTERPRETER, flags.PYTHON_PLATFORM, flags.PYTHON_VERSION})
INSTALL = arguments(optional={flags.CACHE_DIR, flags.INDEX_URL}, switches={flags.NO_BYTECODE})
UV_PROJECT = arguments(optional={flags.DISPLAY_DIR, flags.PROJECT, flags.UV, flags.UV_CACHE})
REGISTRY_CONNECTION = arguments(
    optional={
        flags.CA_BUNDLE_SETTING,
        flags.CONNECT_TIMEOUT,
        flags.CONNECT_TIMEOUT_SETTING,
        flags.CREDENTIAL_HELPER_PATH,
        flags.DOCKER_CONFIG,
        flags.INSECURE_REGISTRY,
        flags.INSECURE_SETTING,
        flags.READ_TIMEOUT,
        flags.READ_TIMEOUT_SETTING,
        flags.REGISTRY_CA,
    },
    repeated={flags.INSECURE_REGISTRY, flags.REGISTRY_CA},
)

COMMANDS: Mapping[str, Arguments] = {
    ACCOUNTS_LAYER: LAYER_OUTPUT
    | arguments(required={flags.ACCOUNT, flags.LAYOUT, flags.NAME}, repeated={flags.ACCOUNT}),
    ASSEMBLE: arguments(
        required={flags.OUT_LAYOUT, flags.OUT_METADATA, flags.SPEC},
        optional={flags.OUT_APP_INVENTORY, flags.OUT_INVENTORY},
    ),
    BASE_LIBRARIES: arguments(required={flags.LAYOUT, flags.OUT}),
    CHECK_NATIVE: arguments(
        required={flags.BASE, flags.BASE_LIBRARIES, flags.VENV_BLOB},
        optional={flags.BASE_LOCK},
        repeated={flags.VENV_BLOB},
    ),
    DEBIAN_CHECK_LOCK: arguments(required={flags.LOCK}),
    DEBIAN_LOCK: arguments(
        required={flags.ARCHITECTURE, flags.OUT_LOCK, flags.PACKAGE, flags.SOURCE},
        optional={flags.KEYRING},
        switches={flags.NO_VERIFY_RELEASE},
        repeated={flags.ARCHITECTURE, flags.PACKAGE, flags.SOURCE},
    ),
    DEBIAN_ROOTFS: LAYER_OUTPUT
    | arguments(
        required={flags.ARCHITECTURE, flags.DEBS, flags.LOCK},
        optional={flags.ACCOUNT, flags.LOCK_PATH, flags.LOCK_TARGET},
        switches={flags.COMPILE_BYTECODE, flags.KEEP_DOCUMENTATION, flags.KEEP_TRANSLATIONS},
        repeated={flags.ACCOUNT},
    ),
    DISTRIBUTION_LAYER: LAYER_OUTPUT
    | TARGET_PYTHON
    | INSTALL
    | arguments(
        required={flags.UV},
        optional={
            flags.CREDENTIALS_DIR,
            flags.INDEX,
            flags.REQUIREMENT,
            flags.UV_CACHE,
            flags.WHEEL,
        },
        repeated={flags.REQUIREMENT, flags.WHEEL},
    ),
    EXPORT_LOCK: TARGET_PYTHON
    | UV_PROJECT
    | arguments(
        required={flags.OUT, flags.PROJECT, flags.UV},
        optional={
            flags.BUILD_CONSTRAINTS,
            flags.CACHE_DIR,
            flags.EXTRA,
            flags.PACKAGE,
            flags.RELOCK_COMMAND,
        },
        repeated={flags.EXTRA},
    ),
    IMAGE_INDEX: arguments(
        required={
            flags.INVENTORY,
            flags.LAYOUT,
            flags.METADATA,
            flags.OUT_INVENTORY,
            flags.OUT_LAYOUT,
            flags.OUT_METADATA,
        },
        repeated={flags.INVENTORY, flags.LAYOUT, flags.METADATA},
    ),
    IMAGE_PLATFORM: arguments(required={flags.LAYOUT, flags.NAME, flags.OUT}),
    LAYER_FROM_DIR: LAYER_OUTPUT
    | arguments(required={flags.ROOT}, optional={flags.GID, flags.PREFIX, flags.UID}),
    LAYER_INVENTORIES: arguments(required={flags.LAYOUT, flags.OUT_DIR}),
    MERGE_LAYERS: LAYER_OUTPUT | arguments(required={flags.LAYER}, repeated={flags.LAYER}),
    PROJECT_LAYER: LAYER_OUTPUT
    | TARGET_PYTHON
    | INSTALL
    | UV_PROJECT
    | arguments(
        required={flags.DISPLAY_DIR, flags.PROJECT, flags.SERVICE, flags.UV},
        optional={flags.BUILD_CONSTRAINTS},
    ),
    PULL_IMAGE: REGISTRY_CONNECTION
    | arguments(
        required={flags.OUT_LAYOUT, flags.PLATFORM, flags.REFERENCE},
        optional={flags.CACHE_DIR, flags.MIRROR, flags.OUT_METADATA},
        repeated={flags.MIRROR},
    ),
    PUSH_IMAGE: REGISTRY_CONNECTION
    | arguments(
        required={flags.LAYOUT, flags.REFERENCE},
        optional={
            flags.CHUNK_SIZE,
            flags.MOUNT_FROM,
            flags.OUT_PUBLISHED,
            flags.OUT_STATS,
            flags.PUSH_DEADLINE,
            flags.PUSH_DEADLINE_SETTING,
            flags.TAG,
        },
        repeated={flags.MOUNT_FROM, flags.TAG},
    ),
    RUN_IMAGE: arguments(
        required={flags.LAYOUT, flags.METADATA},
        optional={
            flags.ENGINE,
            flags.ENV,
            flags.LOCAL_NAME,
            flags.NETWORK,
            flags.PLATFORM,
            flags.PUBLISH,
            flags.TIMEOUT,
        },
        switches={flags.LOAD_ONLY},
        repeated={flags.ENV, flags.LOCAL_NAME, flags.PUBLISH},
    ),
    SDIST_WHEEL: TARGET_PYTHON
    | arguments(
        required={
            flags.BUILD_CONSTRAINTS,
            flags.OUT_DIR,
            flags.REQUIREMENT,
            flags.SDIST_URL,
            flags.UV,
        },
        optional={
            flags.CACHE_DIR,
            flags.CREDENTIALS_DIR,
            flags.INDEX,
            flags.INDEX_URL,
            flags.UV_CACHE,
        },
    ),
    UV_LAYER: LAYER_OUTPUT | arguments(required={flags.UV}, optional={flags.UV_CACHE}),
    UV_LOCK: UV_PROJECT
    | arguments(
        required={flags.PROJECT, flags.PYTHON_VERSION, flags.UV},
        optional={
            flags.BUILD_CONSTRAINTS,
            flags.CREDENTIALS_DIR,
            flags.INDEX_URL,
            flags.RELOCK_COMMAND,
        },
        switches={flags.UPGRADE, flags.WORKSPACE},
    ),
    VENV_LAYER: LAYER_OUTPUT
    | TARGET_PYTHON
    | INSTALL
    | UV_PROJECT
    | arguments(
        optional={flags.BUILD_CONSTRAINTS, flags.LOCAL_PACKAGE, flags.SOURCE_PATH},
        repeated={flags.LOCAL_PACKAGE, flags.SOURCE_PATH},
    ),
}
"""Each command's flags: a flag a shared group makes optional and the command requires is
required."""

ALL = frozenset(COMMANDS)


class ArgvError(ValueError):
    """An argv the backend built that the tool's parser would refuse or misread: a bug in the
    backend, never the user's input."""


@dataclass(frozen=True)
class Invocation:
    """An argv read as the tool reads it."""

    name: str
    """The command."""
    arguments: Arguments
    values: Mapping[str, Tuple[str, ...]]
    """Each flag given, with its values in order (none for a switch)."""
    rest: Tuple[str, ...] = ()
    """What follows a `--`: the command's positional arguments."""

    def value(self, flag: str) -> str:
        """The one value of a flag given once."""
        (value,) = self.values[flag]
        return value

    def get(self, flag: str) -> Tuple[str, ...]:
        """The values of a flag, none when it is not given."""
        return self.values.get(flag, ())


def _looks_like_a_flag(token: str) -> bool:
    """Whether argparse takes `token` for a flag rather than a value: it starts with `-` and
    is not a negative number."""
    return token.startswith("-") and not re.fullmatch(r"-\d+|-\d*\.\d+", token)


def read_argv(argv: Sequence[str]) -> Invocation:
    """Read `argv` (a subcommand, then its flags) as the tool's parser would, refusing what it
    would refuse or silently misread: an unknown command or flag, a missing required flag, a flag
    without its value, a value given twice to a flag that keeps only the last."""
    if not argv or argv[0] not in COMMANDS:
        raise ArgvError(f"{list(argv[:1])} is not one of the image tool's commands")
    name, command = argv[0], COMMANDS[argv[0]]
    values: Dict[str, List[str]] = {}
    index = 1
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        flag, equals, inline = token.partition("=")
        if flag not in command.takes:
            raise ArgvError(f"`{name}` takes no flag {flag}")
        given = values.setdefault(flag, [])
        if given and flag not in command.repeated:
            raise ArgvError(f"`{name}` takes {flag} once")
        if flag in command.switches:
            if equals:
                raise ArgvError(f"`{name}` {flag} takes no value")
        elif equals:
            given.append(inline)
        elif index + 1 < len(argv) and not _looks_like_a_flag(argv[index + 1]):
            index += 1
            given.append(argv[index])
        else:
            raise ArgvError(f"`{name}` {flag} needs a value")
        index += 1
    missing = sorted(command.required - set(values))
    if missing:
        raise ArgvError(f"`{name}` needs {', '.join(missing)}")
    return Invocation(
        name, command, {flag: tuple(v) for flag, v in values.items()}, tuple(argv[index + 1 :])
    )
