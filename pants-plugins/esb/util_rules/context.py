"""The context rule: a service image's inputs are its own directory, its base, and the packages
of its lock. Nothing else may enter, and within the directory, only what belongs in an image.

Every way an outside file could enter is checked here, for `package` and `lint` alike: a
dependency on a target elsewhere (declared or inferred) or a symbolic link that leaves the
directory. Source globs that leave it are refused when the target is read (see
`EsbServiceSourcesField`). A uv path source outside is refused by the lock
check. Files that never belong in a layer (caches, VCS and editor files, tests) are left out;
files that look like secrets fail the build unless `allowed_secrets` names them.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from esb.target_types import (
    EsbImageDependenciesField,
    EsbServiceAllowedSecretsField,
    EsbServiceBaseField,
    EsbServiceShipTestsField,
    EsbServiceSourcesField,
)
from esb.util_rules.dependencies import ResolvedBaseAddress
from pants.engine.addresses import Address, Addresses
from pants.base.build_root import BuildRoot
from pants.engine.fs import DigestContents, DigestSubset, PathGlobs
from pants.engine.rules import Get, MultiGet, collect_rules, rule
from pants.engine.target import (
    DependenciesRequest,
    ExplicitlyProvidedDependencies,
    HydratedSources,
    HydrateSourcesRequest,
    WrappedTarget,
    WrappedTargetRequest,
)

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
    "*.key",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "*credentials*.json",
    "service-account*.json",
)
# Committed templates of secret files, holding no secret by convention.
SECRET_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist")
LINK_FIX = (
    "replace the link with a copy of what it points to, inside the service's directory, or "
    "leave it out of `sources`: an image may not take files from elsewhere through a link."
)
PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")


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


def looks_like_secret(relative_path: str, content: bytes) -> str | None:
    """Why the file looks like a secret, or None."""
    name = posixpath.basename(relative_path)
    if _matches(name, SECRET_FILES) and not name.endswith(SECRET_TEMPLATE_SUFFIXES):
        return f"its name matches a secret file's (`{name}`)"
    if PRIVATE_KEY.search(content):
        return "it holds a private key (`-----BEGIN ... PRIVATE KEY-----`)"
    return None


def outside(root: str, path: str) -> bool:
    return not (path == root or path.startswith(f"{root}/")) if root else path.startswith("../")


def symlinks_under(build_root: str, root: str, files: Iterable[str]) -> list[tuple[str, str]]:
    """The symbolic links (repository path, target) among `files` and their directories below
    `root`, read from the working tree.

    Pants captures sources through links (a snapshot holds the content a link points to), so the
    links themselves are only seen on disk. Pantsd re-runs this when the sources' content
    changes, which a new link to another file does.
    """
    candidates = set()
    for path in files:
        candidates.add(path)
        parent = posixpath.dirname(path)
        while parent and not outside(root, parent) and parent != root:
            candidates.add(parent)
            parent = posixpath.dirname(parent)
    links = []
    for path in sorted(candidates):
        on_disk = os.path.join(build_root, path)
        if os.path.islink(on_disk):
            links.append((path, os.readlink(on_disk)))
    return links


def symlinks_in_directory(build_root: str, root: str) -> list[tuple[str, str]]:
    """Every symbolic link under `root` on disk, selected or not, as (repository path, target)."""
    links = []
    for directory, subdirectories, files in os.walk(os.path.join(build_root, root)):
        for name in sorted([*subdirectories, *files]):
            on_disk = os.path.join(directory, name)
            if os.path.islink(on_disk):
                links.append((os.path.relpath(on_disk, build_root), os.readlink(on_disk)))
    return sorted(links)


def symlink_violations(root: str, symlinks: Iterable[tuple[str, str]]) -> list[Violation]:
    """Links (repository path, target) that are absolute or resolve outside `root`."""
    violations = []
    for path, target in symlinks:
        if posixpath.isabs(target):
            violations.append(
                Violation(path, f"is a symbolic link to the absolute path `{target}`", LINK_FIX)
            )
            continue
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if outside(root, resolved):
            violations.append(
                Violation(
                    path,
                    f"is a symbolic link to `{target}`, which resolves to `{resolved}`, outside "
                    f"{root or 'the build root'}/",
                    LINK_FIX,
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

    def message(self) -> str:
        root = self.address.spec_path or "the build root"
        listed = "\n".join(f"  - {v.path} {v.reason}" for v in self.violations)
        fixes = "\n".join(f"  - {fix}" for fix in dict.fromkeys(v.fix for v in self.violations))
        return (
            f"The image {self.address} may only use files of its own directory ({root}/), its "
            f"base and the packages of its lock (docs/context-rule.md), but:\n{listed}\n\n"
            f"Fix:\n{fixes}"
        )


@rule
async def service_context(request: ServiceContextRequest, build_root: BuildRoot) -> ServiceContext:
    wrapped = await Get(
        WrappedTarget,
        WrappedTargetRequest(request.address, description_of_origin="the esb backend"),
    )
    target = wrapped.target
    root = request.address.spec_path
    try:
        sources = await Get(HydratedSources, HydrateSourcesRequest(target[EsbServiceSourcesField]))
    except Exception:
        # Pants refuses to capture a link that is absolute or leaves the build root, with a
        # message about reading links; name the links and the rule instead, if that was it.
        links = symlink_violations(root, symlinks_in_directory(build_root.path, root))
        if not links:
            raise
        return ServiceContext(request.address, (), tuple(links))
    base, explicit, dependencies = await MultiGet(
        Get(ResolvedBaseAddress, EsbServiceBaseField, target[EsbServiceBaseField]),
        Get(
            ExplicitlyProvidedDependencies,
            DependenciesRequest(target[EsbImageDependenciesField]),
        ),
        Get(Addresses, DependenciesRequest(target[EsbImageDependenciesField])),
    )
    violations = dependency_violations(
        root, base.address, set(explicit.includes), dependencies
    )
    files = sources.snapshot.files
    violations += symlink_violations(root, symlinks_under(build_root.path, root, files))
    ship_tests = target[EsbServiceShipTestsField].value
    shipped = [path for path in files if not is_junk(_relative(root, path), ship_tests=ship_tests)]
    contents = await Get(
        DigestContents, DigestSubset(sources.snapshot.digest, PathGlobs(shipped))
    )
    allowed = target[EsbServiceAllowedSecretsField].value or ()
    violations += secret_violations(root, {c.path: c.content for c in contents}, allowed)
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
    return collect_rules()
