"""The context rule: a service image's inputs are its own directory, its base and the packages
of its lock. Nothing else may enter; within the directory, only what belongs in an image; and
nothing `sources` selects is left out without a word.

Every way an outside file could enter is checked here, for `package` and `lint` alike: a
dependency on a target elsewhere (declared or inferred) or a symbolic link that leaves the
directory. Source globs that leave it are refused when the target is read (see
`EsbServiceSourcesField`). A uv path source outside is refused by the lock check. Files that
never belong in a layer (caches, VCS and editor files, tests) are left out; files that look like
secrets fail the build unless `allowed_secrets` names them.

Pants captures sources *through* links and skips, without a word, what it cannot capture
(FIFOs, sockets, devices, names that are not UTF-8, links to nothing), so the service's
directory is also read on disk, before Pants captures it: a loop of links would crash the capture.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from pants.base.build_root import BuildRoot
from pants.engine.addresses import Address, Addresses
from pants.engine.fs import DigestContents, DigestSubset, PathGlobs
from pants.engine.rules import Get, MultiGet, _uncacheable_rule, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    HydratedSources,
    HydrateSourcesRequest,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.option.global_options import GlobalOptions
from pants.source.filespec import FilespecMatcher
from pants.util.logging import LogLevel

from esb.target_types import (
    EsbImageDependenciesField,
    EsbServiceAllowedSecretsField,
    EsbServiceBaseField,
    EsbServiceShipTestsField,
    EsbServiceSourcesField,
)
from esb.util_rules import workspace as workspace_rules
from esb.util_rules.dependencies import ResolvedBaseAddress
from esb.util_rules.workspace import WorkspaceDependencies, WorkspaceDependenciesRequest

logger = logging.getLogger(__name__)

# Never part of an image, whatever the sources field selects: bytecode and tool caches (the
# image compiles its own bytecode), virtualenvs, VCS metadata, editor and OS droppings.
JUNK_DIRECTORIES = frozenset(
    {
        "__pycache__",
        ".venv",
        ".git",
        ".hg",
        ".svn",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        ".idea",
        ".vscode",
        "htmlcov",
        "node_modules",
    }
)
JUNK_FILES = ("*.pyc", "*.pyo", "*.swp", "*.swo", "*~", ".DS_Store", ".coverage", "*.orig", "*.rej")
TEST_DIRECTORIES = frozenset({"tests", "test"})
TEST_FILES = ("test_*.py", "*_test.py", "conftest.py")

SECRET_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.key",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "*.ppk",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".htpasswd",
    ".git-credentials",
    ".dockerconfigjson",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "service-account*.json",
)
# Secret files known by their directory too: Docker's credential store.
SECRET_PATHS = (".docker/config.json", "*/.docker/config.json")
# Committed templates of secret files, holding no secret by convention.
SECRET_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist")
SECRET_CONTENTS = (
    (
        re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
        "it holds a private key (`-----BEGIN ... PRIVATE KEY-----`)",
    ),
    (
        re.compile(rb"PuTTY-User-Key-File-[0-9]+:"),
        "it holds a PuTTY private key (`PuTTY-User-Key-File-...`)",
    ),
    # The key's name with a 40-character value, as in `~/.aws/credentials` and `~/.aws/config`;
    # code that passes the key along by name (`aws_secret_access_key=secret`) is no match.
    (
        re.compile(
            rb"(?i:aws_secret_access_key)[\"']?[ \t]*[=:][ \t]*[\"']?[A-Za-z0-9/+]{40}"
            rb"(?![A-Za-z0-9/+])"
        ),
        "it holds an AWS secret access key (`aws_secret_access_key = ...`)",
    ),
)

LINK_FIX = (
    "replace the link with a copy of what it points to, inside the service's directory, or "
    "leave it out of `sources`: an image may not take files from elsewhere through a link. "
    "Links are followed as the system follows them: `..` after a link to a directory climbs "
    "from where that link points, not from where the link is."
)
ABSOLUTE_LINK_FIX = (
    "make the link relative, to a file inside the service's directory, or replace it with a "
    "copy of what it points to: Pants refuses absolute links, and an image may not take files "
    "from elsewhere through a link."
)
DANGLING_LINK_FIX = (
    "create what the link points to inside the service's directory, or remove the link or "
    "leave it out of `sources`: Pants skips a link to nothing, and the image would lack the file."
)
LOOP_FIX = (
    "remove the link, or point it at a file, or at a directory that does not hold the link: "
    "Pants cannot read a loop of links."
)
UNDECODABLE_FIX = (
    "rename the file to a UTF-8 name, or leave it out of `sources`: Pants cannot capture a file "
    "whose name is not UTF-8, so the image would lack it."
)
SPECIAL_FIX = (
    "delete it or move it out of the service's directory, or leave it out of `sources` (a `!` "
    "glob): an image carries files' contents, and a {kind} has none."
)
SOURCELESS_FIX = (
    "add the module's source `{source}` to the service (the image compiles its own bytecode and "
    "leaves `.pyc` files out), or delete the stale `{name}`."
)
DIRECTORY_LINK_FIX = (
    "make the service's directory a real directory holding its files: Pants would see them "
    "under two paths, and `dependents` and `--changed-since` would not connect a change "
    "to the files' real path with this image."
)
# The kernel's limit on the links followed to resolve one path (ELOOP).
MAX_LINKS = 40


@dataclass(frozen=True)
class Violation:
    path: str
    """The offending path or address, as the message names it."""
    reason: str
    fix: str


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_junk(relative_path: str, *, ship_tests: bool) -> bool:
    """Whether a file of the service (path relative to its directory) never enters a layer."""
    *directories, name = relative_path.split("/")
    if any(d in JUNK_DIRECTORIES or d.endswith(".egg-info") for d in directories):
        return True
    if _matches(name, JUNK_FILES):
        return True
    if not ship_tests and (
        any(d in TEST_DIRECTORIES for d in directories) or _matches(name, TEST_FILES)
    ):
        return True
    return False


def _texts(content: bytes) -> Iterator[bytes]:
    """The content, and, when it may be UTF-16 (it holds NUL bytes), its text in UTF-8 read as
    UTF-16 of either byte order and either alignment, with or without a byte order mark."""
    yield content
    if b"\0" in content:
        for encoding in ("utf-16-le", "utf-16-be"):
            for start in (0, 1):
                yield content[start:].decode(encoding, "ignore").encode("utf-8", "ignore")


def looks_like_secret(relative_path: str, content: bytes) -> str | None:
    """Why the file looks like a secret, or None."""
    name = posixpath.basename(relative_path)
    if not name.endswith(SECRET_TEMPLATE_SUFFIXES):
        if _matches(name, SECRET_FILES):
            return f"its name matches a secret file's (`{name}`)"
        if _matches(relative_path, SECRET_PATHS):
            return f"its path matches a secret file's (`{relative_path}`)"
    for text in _texts(content):
        for pattern, reason in SECRET_CONTENTS:
            if pattern.search(text):
                return reason
    return None


def outside(root: str, path: str) -> bool:
    return not (path == root or path.startswith(f"{root}/")) if root else path.startswith("../")


def _within(directory: str, path: str) -> bool:
    """Whether the absolute `path` is `directory` or below it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@dataclass(frozen=True)
class Resolution:
    """Where a path leads when each link on the way is followed as the kernel follows it."""

    links: tuple[tuple[str, str], ...]
    """(absolute path, target) of each link followed, in order."""
    real_path: str | None
    """The absolute path with no link left in it, or None when it does not resolve."""
    problem: str | None
    """Why it does not resolve: `absolute`, `missing` or `loop`."""
    missing: str | None = None
    """The absolute path that does not exist or is not a directory, when `missing`."""


def resolve(directory: str, relative: str) -> Resolution:
    """Follows `relative` from the real (link-free, absolute) `directory` one component at a
    time, each link's target in place of the link, so that `..` after a link to a directory
    leaves the directory it points to, as the kernel and Pants do. An absolute target is not
    followed: Pants refuses it whatever it names."""
    current = directory
    pending = list(reversed(relative.split("/")))
    links: list[tuple[str, str]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            current = posixpath.dirname(current)
            continue
        candidate = posixpath.join(current, part)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return Resolution(tuple(links), None, "missing", candidate)
        if stat.S_ISLNK(mode):
            state = (candidate, tuple(pending))
            if state in seen or len(links) >= MAX_LINKS:
                return Resolution(tuple(links), None, "loop")
            seen.add(state)
            target = os.readlink(candidate)
            links.append((candidate, target))
            if posixpath.isabs(target):
                return Resolution(tuple(links), None, "absolute")
            pending.extend(reversed(target.split("/")))
            continue
        if pending and not stat.S_ISDIR(mode):
            missing = posixpath.join(candidate, *reversed(pending))
            return Resolution(tuple(links), None, "missing", missing)
        current = candidate
    return Resolution(tuple(links), current, None)


@dataclass(frozen=True)
class DirectoryScan:
    """What a read of the service's directory on disk found among the paths `sources` selects."""

    violations: tuple[Violation, ...]
    """Links that leave the directory, loop, are absolute or lead to nothing; files whose names
    Pants cannot capture."""
    dropped: tuple[Violation, ...]
    """FIFOs, sockets and devices: files without content, left out with a warning."""
    capturable: bool
    """Whether Pants can capture the sources: no loop, no absolute link, no link leaving the
    build root."""


class _Scan:
    """One walk of a service's directory, as Pants' globs walk it: through links to directories,
    skipping what `pants_ignore` skips by name, and only where an include glob can reach."""

    def __init__(
        self,
        build_root: str,
        root: str,
        matcher: FilespecMatcher,
        includes: Sequence[str],
        ignored: Callable[[str, bool], bool],
    ) -> None:
        self.build_root = os.path.realpath(build_root)
        self.root = root
        self.boundary = os.path.realpath(os.path.join(self.build_root, root))
        self.matcher = matcher
        self.includes = [PurePosixPath(glob).parts for glob in includes]
        self.ignored = ignored
        self.violations: list[Violation] = []
        self.dropped: list[Violation] = []
        self.capturable = True

    def selects(self, path: str) -> bool:
        # The matcher takes text: a name that is not UTF-8 is matched with U+FFFD in its place.
        text = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return bool(self.matcher.matches([text]))

    def reaches(self, directory: str) -> bool:
        """Whether an include glob may match a path below `directory`."""
        # The walk joins names to a normalised root: splitting is what PurePosixPath would do.
        parts = tuple(directory.split("/"))
        return any(_glob_reaches(glob, parts) for glob in self.includes)

    def show(self, path: str) -> str:
        """An absolute path as the messages name it: relative to the build root if inside."""
        if _within(self.build_root, path):
            return posixpath.relpath(path, self.build_root)
        return path

    def walk(self, real_directory: str, directory: str, above: frozenset[str]) -> None:
        try:
            with os.scandir(real_directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            reason = f"cannot be read: {error.strerror}"
            fix = "make the directory readable, or leave it out of `sources`."
            self.violations.append(Violation(directory, reason, fix))
            self.capturable = False
            return
        for entry in entries:
            name = entry.name
            # Most entries are regular files, and one can only be wrong in its name: skipped
            # here without a stat (the listing gives the type) or a match, as every run scans
            # every service.
            if entry.is_file(follow_symlinks=False) and _utf8(name):
                continue
            path = posixpath.join(directory, name)
            on_disk = entry.path
            mode = entry.stat(follow_symlinks=False).st_mode
            if self.ignored(name, stat.S_ISDIR(mode)):
                continue
            if not (self.selects(path) or self.reaches(path)):
                continue
            if not _utf8(name):
                self.violations.append(
                    Violation(_printable(path), "has a name that is not UTF-8", UNDECODABLE_FIX)
                )
                continue
            if stat.S_ISLNK(mode):
                real = self.check_link(path, real_directory, name)
                if real is None:
                    continue
                if os.path.isdir(real) and real in above:
                    self.violations.append(
                        Violation(
                            path,
                            f"is a symbolic link to `{os.readlink(on_disk)}`, which leads back to "
                            f"{self.show(real)}, a directory that holds it: a loop",
                            LOOP_FIX,
                        )
                    )
                    self.capturable = False
                    continue
                on_disk, mode = real, os.stat(real).st_mode
            if stat.S_ISDIR(mode):
                if self.reaches(path):
                    self.walk(on_disk, path, above | {on_disk})
            elif not stat.S_ISREG(mode) and self.selects(path):
                kind = _special_kind(mode)
                self.dropped.append(
                    Violation(path, f"is a {kind}, not a file", SPECIAL_FIX.format(kind=kind))
                )

    def check_link(self, path: str, real_directory: str, name: str) -> str | None:
        """The real path of the link at `path`, or None after naming what is wrong with it."""
        resolution = resolve(real_directory, name)
        (_, first_target), *rest = resolution.links
        inside = f"{self.root or 'the build root'}/"
        through = [
            f"{self.show(location)} (to `{target}`"
            + ("" if _within(self.boundary, location) else f", outside {inside}")
            + ")"
            for location, target in rest
        ]

        def said(clause: str) -> str:
            if not through:
                return f"is a symbolic link to `{first_target}`, which {clause}"
            links = f"symbolic link{'s' if len(through) > 1 else ''} {', '.join(through)}"
            return (
                f"is a symbolic link to `{first_target}`, which goes through the {links} and "
                f"{clause}"
            )

        real = resolution.real_path
        if resolution.problem == "absolute":
            absolute = resolution.links[-1][1]
            reason = (
                said(f"leads to the absolute path `{absolute}`")
                if rest
                else f"is a symbolic link to the absolute path `{absolute}`"
            )
            self.violations.append(Violation(path, reason, ABSOLUTE_LINK_FIX))
            self.capturable = False
        elif resolution.problem == "loop":
            self.violations.append(Violation(path, said("never ends: the links loop"), LOOP_FIX))
            self.capturable = False
        elif resolution.problem == "missing":
            # A link to nothing that a glob only walks past could have been a directory.
            if self.selects(path):
                missing = self.show(resolution.missing or "")
                reason = said(f"leads to nothing: {missing} does not exist")
                self.violations.append(Violation(path, reason, DANGLING_LINK_FIX))
        elif real is not None and (
            not _within(self.boundary, real)
            or not all(_within(self.boundary, location) for location, _ in rest)
        ):
            # Only what the globs take matters: a directory they walk into, a file they select.
            if not (self.reaches(path) if os.path.isdir(real) else self.selects(path)):
                return None
            where = "" if _within(self.boundary, real) else f", outside {inside}"
            reason = said(f"resolves to `{self.show(real)}`{where}")
            self.violations.append(Violation(path, reason, LINK_FIX))
            self.capturable = self.capturable and _within(self.build_root, real)
        else:
            return real
        return None


_WILDCARD = re.compile(r"[*?[]")


def _glob_reaches(glob: tuple[str, ...], directory: tuple[str, ...]) -> bool:
    """Whether the glob (components) may match a path below the directory (components)."""
    if not glob:
        return False
    if "**" in glob[0]:
        return True
    if not directory:
        return True
    # A component without wildcards (a service's own directory, in every service's globs) is
    # compared as it is: fnmatch would compile and cache a pattern per service.
    matches = (
        fnmatch.fnmatchcase(directory[0], glob[0])
        if _WILDCARD.search(glob[0])
        else directory[0] == glob[0]
    )
    return matches and _glob_reaches(glob[1:], directory[1:])


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    """A path that may hold bytes that are not UTF-8, with those bytes as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


def ignored_by_name(pants_ignore: Iterable[str]) -> Callable[[str, bool], bool]:
    """What `[GLOBAL].pants_ignore` skips by name alone (`.*/`, `__pycache__`), as a test of a
    name and whether it is a directory. Patterns anchored to a path are not applied, and none
    at all when one re-includes (`!`): the walk then reads more than Pants, never less."""
    patterns = list(pants_ignore)
    if any(pattern.startswith("!") for pattern in patterns):
        return lambda name, is_directory: False
    by_name = [
        (pattern.rstrip("/"), pattern.endswith("/"))
        for pattern in patterns
        if "/" not in pattern.rstrip("/")
    ]
    return lambda name, is_directory: any(
        fnmatch.fnmatchcase(name, pattern) and (is_directory or not directory_only)
        for pattern, directory_only in by_name
    )


def scan_directory(
    build_root: str,
    root: str,
    matcher: FilespecMatcher,
    includes: Sequence[str],
    ignored: Callable[[str, bool], bool],
) -> DirectoryScan:
    """Reads the service's directory `root` on disk for what `sources` (`matcher`, and its
    `includes` globs, relative to the build root) selects but Pants would not capture as it is:
    links, loops, FIFOs, sockets, devices and names that are not UTF-8."""
    scan = _Scan(build_root, root, matcher, includes, ignored)
    above = resolve(scan.build_root, root).links if root else ()
    if above:
        links = ", ".join(f"{scan.show(location)} (to `{target}`)" for location, target in above)
        scan.violations.append(
            Violation(
                root,
                f"is reached through the symbolic link{'s' if len(above) > 1 else ''} {links}: "
                f"its files are those of {scan.show(scan.boundary)}",
                DIRECTORY_LINK_FIX,
            )
        )
    scan.walk(scan.boundary, root, frozenset({scan.boundary}))
    return DirectoryScan(tuple(scan.violations), tuple(scan.dropped), scan.capturable)


def report(header: str, violations: Iterable[Violation]) -> str:
    """The header, each violation's path and reason, and each distinct fix once."""
    listed = "\n".join(f"  - {v.path} {v.reason}" for v in violations)
    fixes = "\n".join(f"  - {fix}" for fix in dict.fromkeys(v.fix for v in violations))
    return f"{header}\n{listed}\n\nFix:\n{fixes}"


def dropped_message(address: Address, dropped: Iterable[Violation]) -> str:
    return report(
        f"The image {address} leaves out files that its `sources` select, as Pants skips them "
        "(docs/context-rule.md):",
        dropped,
    )


@dataclass(frozen=True)
class DirectoryScanRequest:
    address: Address


@_uncacheable_rule(desc="Read a service's directory on disk", level=LogLevel.DEBUG)
async def scan_service_directory(
    request: DirectoryScanRequest, build_root: BuildRoot, global_options: GlobalOptions
) -> DirectoryScan:
    """Uncacheable: the disk holds what the engine does not see (links, FIFOs, ...), so it is
    read again in every run, and what depends on it re-runs only when the result changes."""
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    sources = wrapped.target[EsbServiceSourcesField]
    scan = scan_directory(
        build_root.path,
        request.address.spec_path,
        sources.filespec_matcher,
        sources.filespec["includes"],
        ignored_by_name(global_options.pants_ignore),
    )
    if scan.dropped:
        logger.warning(dropped_message(request.address, scan.dropped))
    return scan


def sourceless_modules(root: str, files: Iterable[str], *, ship_tests: bool) -> list[Violation]:
    """Selected `name.pyc` files without `name.py`: Python imports them in the working tree,
    but the image leaves `.pyc` files out, so the module would be missing there."""
    selected = set(files)
    violations = []
    for path in sorted(selected):
        source, name = path[: -len(".pyc")] + ".py", posixpath.basename(path)
        if (
            not path.endswith(".pyc")
            or source in selected
            or not name[: -len(".pyc")].isidentifier()
            or is_junk(_relative(root, source), ship_tests=ship_tests)
        ):
            continue
        violations.append(
            Violation(
                path,
                f"is a compiled module without its source `{posixpath.basename(source)}`: "
                "Python imports it here, but the image would not have it",
                SOURCELESS_FIX.format(source=_relative(root, source), name=name),
            )
        )
    return violations


@dataclass(frozen=True)
class ServiceContextRequest:
    address: Address


@dataclass(frozen=True)
class ServiceContext:
    """What of the service's directory may enter its image, and what breaks the context rule."""

    address: Address
    shipped_files: tuple[str, ...]
    """Repository paths of the selected files that belong in a layer (junk left out)."""
    violations: tuple[Violation, ...]
    captured: bool = True
    """Whether Pants may capture the sources: false when it would crash on a loop of links or
    refuse a link, and the violations say why. Whatever reads the sources checks it first."""

    def message(self) -> str:
        root = self.address.spec_path or "the build root"
        return report(
            f"The image {self.address} may only use files of its own directory ({root}/), its "
            "base and the packages of its lock, and must ship every file its `sources` select "
            "and no secret (docs/context-rule.md), but:",
            self.violations,
        )


@rule
async def service_context(request: ServiceContextRequest) -> ServiceContext:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    root = request.address.spec_path
    scan, base, explicit, dependencies, workspace = await MultiGet(
        Get(DirectoryScan, DirectoryScanRequest(request.address)),
        Get(ResolvedBaseAddress, EsbServiceBaseField, target[EsbServiceBaseField]),
        Get(
            ExplicitlyProvidedDependencies,
            DependenciesRequest(target[EsbImageDependenciesField]),
        ),
        Get(Addresses, DependenciesRequest(target[EsbImageDependenciesField])),
        Get(WorkspaceDependencies, WorkspaceDependenciesRequest(request.address)),
    )
    # A uv workspace member also takes the root's pyproject.toml and uv.lock and the members
    # it installs (esb/util_rules/workspace.py): their owners are admitted, nothing else.
    admitted = set(workspace.addresses)
    violations = dependency_violations(
        root, base.address, set(explicit.includes), (d for d in dependencies if d not in admitted)
    )
    violations += scan.violations
    if not scan.capturable:
        # Pants would crash on a loop of links, or refuse a link out of the build root.
        return ServiceContext(request.address, (), tuple(violations), captured=False)
    sources = await Get(HydratedSources, HydrateSourcesRequest(target[EsbServiceSourcesField]))
    files = sources.snapshot.files
    ship_tests = target[EsbServiceShipTestsField].value
    violations += sourceless_modules(root, files, ship_tests=ship_tests)
    shipped = [path for path in files if not is_junk(_relative(root, path), ship_tests=ship_tests)]
    contents = await Get(DigestContents, DigestSubset(sources.snapshot.digest, PathGlobs(shipped)))
    allowed = target[EsbServiceAllowedSecretsField].value or ()
    violations += secret_violations(root, {c.path: c.content for c in contents}, allowed)
    if workspace.member_files:
        members = await Get(DigestContents, PathGlobs(workspace.member_files))
        # `allowed_secrets` is relative to the service's directory: it cannot name these.
        violations += [
            Violation(
                v.path,
                v.reason,
                "keep secrets out of images (mount them at run time) "
                "and out of the workspace members that services install.",
            )
            for v in secret_violations("", {c.path: c.content for c in members}, ())
        ]
    return ServiceContext(request.address, tuple(shipped), tuple(violations))


def dependency_violations(
    root: str, base: Address, explicit: set[Address], dependencies: Iterable[Address]
) -> list[Violation]:
    violations = []
    for address in sorted(dependencies):
        if address == base or not outside(root, address.spec_path):
            continue
        how = "declared in `dependencies`" if address in explicit else "inferred"
        violations.append(
            Violation(
                str(address),
                f"is a dependency ({how}) on a target outside {root or 'the build root'}/",
                f"remove `{address}` from the target's `dependencies`: an image takes nothing "
                "from other targets but its `base`; code shared by services is published as a "
                "versioned package and locked like any other dependency.",
            )
        )
    return violations


def secret_violations(
    root: str, contents: Mapping[str, bytes], allowed: Iterable[str]
) -> list[Violation]:
    violations = []
    for path, content in sorted(contents.items()):
        relative = _relative(root, path)
        if _matches(relative, allowed):
            continue
        reason = looks_like_secret(relative, content)
        if reason:
            violations.append(
                Violation(
                    path,
                    f"looks like a secret: {reason}",
                    "keep secrets out of images (mount them at run time) and out of `sources`; "
                    f"a file that only looks like one may ship if `{EsbServiceAllowedSecretsField.alias}` "
                    f'lists it, e.g. `{EsbServiceAllowedSecretsField.alias}=["{relative}"]`.',
                )
            )
    return violations


def _relative(root: str, path: str) -> str:
    return posixpath.relpath(path, root) if root else path


def rules():
    return [*collect_rules(), *workspace_rules.rules()]
