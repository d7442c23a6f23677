"""Resolve requested Debian packages to their dependency closure, and the lock that pins it.

Resolution follows Depends and Pre-Depends (alternatives, virtual packages through Provides,
version constraints, architecture qualifiers) from the requested packages only: Essential
packages are not implied, because an image runs no package manager and no maintainer scripts.
Each package name has one candidate, its highest version across all sources, as apt's default
policy would choose.

The lock records each package's Depends, Pre-Depends and Provides, so that a build can check,
with the same semantics and without the indexes, that the locked set is still closed: a lock
edited by hand (or merged badly) that lacks a dependency fails before anything is assembled.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, fields
from typing import Generic, Iterable, Protocol, Sequence, TypeVar

from debian.deb822 import PkgRelation
from debian.debian_support import Version, version_compare

from esb_contract.base_lock import LockedPackage, LockedSource, PackageLock, PackageLocks
from esb_contract.platform_facts import PlatformFacts
from imagetool.debian.archive import SuiteIndex
from imagetool.errors import ToolError

_VERSION_TESTS = {
    "<<": lambda order: order < 0,
    "<=": lambda order: order <= 0,
    "=": lambda order: order == 0,
    ">=": lambda order: order >= 0,
    ">>": lambda order: order > 0,
}
_PYTHON_INTERPRETER_PACKAGE = re.compile(r"python3\.\d+")


class ResolutionError(ToolError):
    """The requested packages have no consistent closure in the indexes."""


class UnclosedLockError(ToolError):
    """A lock misses a package that one of its packages depends on."""


@dataclass(frozen=True)
class IndexEntry(LockedPackage):
    """A binary package as a Packages index describes it: what a lock records of it, and the
    relations that only resolution reads."""

    conflicts: str
    breaks: str

    def locked(self) -> LockedPackage:
        return LockedPackage(**{f.name: getattr(self, f.name) for f in fields(LockedPackage)})


def index_entries(suites: Iterable[SuiteIndex], architecture: str) -> list[IndexEntry]:
    return [
        IndexEntry(
            name=paragraph["Package"],
            version=paragraph["Version"],
            architecture=paragraph["Architecture"],
            url=f"{suite.source.url}/{paragraph['Filename']}",
            sha256=paragraph["SHA256"],
            size=int(paragraph["Size"]),
            depends=paragraph.get("Depends", ""),
            pre_depends=paragraph.get("Pre-Depends", ""),
            provides=paragraph.get("Provides", ""),
            conflicts=paragraph.get("Conflicts", ""),
            breaks=paragraph.get("Breaks", ""),
        )
        for suite in suites
        for paragraph in suite.paragraphs
        if paragraph["Architecture"] in (architecture, "all")
    ]


def lock_packages(
    suites: Sequence[SuiteIndex], architecture: str, requested: Iterable[str]
) -> PackageLock:
    requested_names = tuple(sorted(set(requested)))
    closure = resolve_closure(index_entries(suites, architecture), requested_names, architecture)
    packages = tuple(entry.locked() for entry in closure)
    lock = PackageLock(
        architecture=architecture,
        sources=tuple(
            LockedSource(
                url=suite.source.url,
                suite=suite.source.suite,
                components=suite.source.components,
                release_date=suite.release_date,
                index_sha256=dict(sorted(suite.index_sha256.items())),
            )
            for suite in suites
        ),
        requested=requested_names,
        platform=platform_facts(packages, architecture),
        packages=packages,
    )
    # The resolver and the build's check must agree: a lock the build would refuse is not written.
    check_closed(lock)
    return lock


def read_lock(text: str) -> PackageLocks:
    """A lock as a build reads it: parsed, and each architecture's checked to be closed under
    its dependencies."""
    locks = PackageLocks.from_json(text)
    for lock in locks.locks:
        check_closed(lock)
    return locks


def platform_facts(packages: Iterable[LockedPackage], architecture: str) -> PlatformFacts:
    by_name = {package.name: package for package in packages}
    interpreters = sorted(name for name in by_name if _PYTHON_INTERPRETER_PACKAGE.fullmatch(name))
    if len(interpreters) > 1:
        raise ResolutionError(
            f"The closure holds several Python interpreters ({', '.join(interpreters)}), so the "
            "base has no single Python version. Request only one."
        )
    return PlatformFacts(
        architecture=architecture,
        glibc_version=_upstream_version(by_name["libc6"]) if "libc6" in by_name else None,
        python_version=_upstream_version(by_name[interpreters[0]]) if interpreters else None,
    )


def _upstream_version(package: LockedPackage) -> str:
    upstream_version = Version(package.version).upstream_version
    if upstream_version is None:
        raise ResolutionError(
            f"The package {package} has a version without an upstream part, so the base's "
            "platform facts cannot be derived from it. Request another version of it."
        )
    return upstream_version


def resolve_closure(
    entries: Iterable[IndexEntry], requested: Sequence[str], architecture: str
) -> list[IndexEntry]:
    """The requested packages and everything they depend on, sorted by name."""
    closure = _Closure(entries, architecture)
    for name in requested:
        closure.request(name)
    closure.follow_dependencies()
    closure.check_conflicts()
    return sorted(closure.selected.by_name.values(), key=lambda entry: entry.name)


def check_closed(lock: PackageLock) -> None:
    """Every Depends and Pre-Depends of every locked package is satisfied by locked packages,
    and every requested package is locked."""
    locked = _Provisions(lock.packages, lock.architecture)
    unrequested = sorted(set(lock.requested) - set(locked.by_name))
    # Missing names (one alternative group) → the packages that need them, with the relation.
    unmet: dict[tuple[str, ...], list[str]] = {}
    for package in lock.packages:
        for field, value in (("Pre-Depends", package.pre_depends), ("Depends", package.depends)):
            for group in _relations(value):
                if not any(locked.matches(relation) for relation in group):
                    key = tuple(relation.qualified_name for relation in group)
                    text = " | ".join(map(str, group))
                    unmet.setdefault(key, []).append(f"{package} ({field}: {text})")
    lines = []
    if unmet:
        lines.append(
            "The lock is not closed under its packages' dependencies (Depends and Pre-Depends):"
        )
        for names, dependents in sorted(unmet.items()):
            facts = "; ".join(locked.describe(name) for name in names)
            lines.append(f"  - {' | '.join(names)} ({facts}), needed by:")
            lines += [f"      {dependent}" for dependent in dependents]
    if unrequested:
        lines.append(f"The lock does not hold its requested {', '.join(unrequested)}.")
    if lines:
        raise UnclosedLockError("\n".join(lines))


@dataclass(frozen=True)
class _Relation:
    name: str
    version: tuple[str, str] | None
    architecture: str | None
    """The qualifier of `name:any` or `name:amd64`; None when unqualified."""

    @property
    def qualified_name(self) -> str:
        return f"{self.name}:{self.architecture}" if self.architecture else self.name

    def __str__(self) -> str:
        if self.version:
            return f"{self.qualified_name} ({self.version[0]} {self.version[1]})"
        return self.qualified_name


def _relations(field: str) -> list[list[_Relation]]:
    """A relationship field as AND-ed groups of OR-ed alternatives."""
    if not field:
        return []
    return [
        [
            _Relation(alternative["name"], alternative["version"], alternative["archqual"])
            for alternative in group
        ]
        for group in PkgRelation.parse_relations(field)
    ]


def _satisfies(version: str | None, constraint: tuple[str, str] | None) -> bool:
    if constraint is None:
        return True
    if version is None:
        # An unversioned Provides never satisfies a versioned dependency.
        return False
    operator, wanted = constraint
    return _VERSION_TESTS[operator](version_compare(version, wanted))


class _Package(Protocol):
    """An index entry or a locked package: what matching a relation reads."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def architecture(self) -> str: ...

    @property
    def provides(self) -> str: ...


_P = TypeVar("_P", bound=_Package)


class _Provisions(Generic[_P]):
    """Packages of one architecture (and `all`) by name and by the virtual names they provide:
    what can satisfy a relation among them."""

    def __init__(self, packages: Iterable[_P], architecture: str) -> None:
        self.architecture = architecture
        self.by_name: dict[str, _P] = {}
        # virtual name -> [(provider, provided version or None)], in the order of addition
        self.providers: dict[str, list[tuple[_P, str | None]]] = {}
        for package in sorted(packages, key=lambda package: package.name):
            self.add(package)

    def add(self, package: _P) -> None:
        self.by_name[package.name] = package
        for group in _relations(package.provides):
            for provided in group:
                version = provided.version[1] if provided.version else None
                self.providers.setdefault(provided.name, []).append((package, version))

    def real(self, relation: _Relation) -> _P | None:
        """The package of the relation's own name, if its version and architecture fit."""
        package = self.by_name.get(relation.name)
        if package is None or not self._fits(package, relation.architecture):
            return None
        return package if _satisfies(package.version, relation.version) else None

    def providing(self, relation: _Relation) -> list[_P]:
        return [
            provider
            for provider, provided_version in self.providers.get(relation.name, [])
            if self._fits(provider, relation.architecture)
            and _satisfies(provided_version, relation.version)
        ]

    def matches(self, relation: _Relation) -> list[_P]:
        real = self.real(relation)
        return ([real] if real is not None else []) + self.providing(relation)

    def describe(self, qualified_name: str) -> str:
        """What the packages hold under a name, for a message about an unmet relation."""
        name = qualified_name.split(":", 1)[0]
        facts = []
        if name in self.by_name:
            package = self.by_name[name]
            facts.append(f"locked at version {package.version} for {package.architecture}")
        providers = [
            f"{provider.name}" + (f" (= {version})" if version else "")
            for provider, version in self.providers.get(name, [])
        ]
        if providers:
            facts.append(f"provided by {', '.join(providers)}")
        return ", ".join(facts) if facts else "no locked package is or provides it"

    def _fits(self, package: _P, qualifier: str | None) -> bool:
        """Whether a package's architecture meets a relation's qualifier: unqualified and `:any`
        take any package of the set, `:native` and `:<arch>` the named architecture (an `all`
        package counts as the set's own)."""
        if qualifier in (None, "any"):
            return True
        wanted = self.architecture if qualifier == "native" else qualifier
        architecture = self.architecture if package.architecture == "all" else package.architecture
        return architecture == wanted


class _Closure:
    """The resolution state: which package each name resolved to, and who pulled it in."""

    def __init__(self, entries: Iterable[IndexEntry], architecture: str) -> None:
        highest: dict[str, IndexEntry] = {}
        for entry in entries:
            current = highest.get(entry.name)
            if current is None or version_compare(entry.version, current.version) > 0:
                highest[entry.name] = entry
        self._candidates = _Provisions(highest.values(), architecture)
        self.selected: _Provisions[IndexEntry] = _Provisions((), architecture)
        self._pulled_by: dict[str, str | None] = {}
        self._pending: deque[tuple[list[_Relation], str]] = deque()
        # Groups with a choice wait until every unambiguous dependency is selected, so that a
        # choice prefers what the closure holds anyway over an alternative's first member.
        self._deferred: deque[tuple[list[_Relation], str]] = deque()

    def request(self, name: str) -> None:
        if name not in self._candidates.by_name:
            providers = sorted(
                {entry.name for entry, _ in self._candidates.providers.get(name, [])}
            )
            hint = (
                f"it is a virtual package provided by {', '.join(providers)}: request one of them"
                if providers
                else "check the spelling, the sources and their components"
            )
            raise ResolutionError(
                f"The requested package {name} is in none of the indexes: {hint}."
            )
        self._select(self._candidates.by_name[name], pulled_by=None)

    def follow_dependencies(self) -> None:
        while self._pending or self._deferred:
            while self._pending:
                group, dependent = self._pending.popleft()
                if self._is_satisfied(group):
                    continue
                choices = [self._choices(relation) for relation in group]
                if len(group) == 1 and len(choices[0]) == 1:
                    self._select(choices[0][0], pulled_by=dependent)
                elif not any(choices):
                    raise self._unsatisfiable(group, dependent)
                else:
                    self._deferred.append((group, dependent))
            if self._deferred:
                group, dependent = self._deferred.popleft()
                if not self._is_satisfied(group):
                    self._select(self._choose(group, dependent), pulled_by=dependent)

    def check_conflicts(self) -> None:
        for entry in sorted(self.selected.by_name.values(), key=lambda entry: entry.name):
            for field, value in (("Conflicts", entry.conflicts), ("Breaks", entry.breaks)):
                for group in _relations(value):
                    for relation in group:
                        for other in self.selected.matches(relation):
                            if other.name != entry.name:
                                raise ResolutionError(
                                    f"{self._chain(entry.name)} ({entry}) declares "
                                    f"'{field}: {relation}', which {self._chain(other.name)} "
                                    f"({other}) matches. Request packages that can be installed "
                                    "together."
                                )

    def _select(self, entry: IndexEntry, pulled_by: str | None) -> None:
        if entry.name in self.selected.by_name:
            return
        self.selected.add(entry)
        self._pulled_by[entry.name] = pulled_by
        for group in _relations(entry.pre_depends) + _relations(entry.depends):
            self._pending.append((group, entry.name))

    def _choices(self, relation: _Relation) -> list[IndexEntry]:
        """The packages that could satisfy the relation: the real package, else its providers."""
        real = self._candidates.real(relation)
        return [real] if real is not None else self._candidates.providing(relation)

    def _choose(self, group: list[_Relation], dependent: str) -> IndexEntry:
        """The first alternative that some package satisfies, as apt picks; it must be unique."""
        relation, choices = next(
            (relation, choices) for relation in group if (choices := self._choices(relation))
        )
        if len(choices) == 1:
            return choices[0]
        raise ResolutionError(
            f"{self._chain(dependent)} → {' | '.join(map(str, group))}: {relation.name} is a "
            f"virtual package provided by {', '.join(entry.name for entry in choices)}. Add the one "
            "you want to the requested packages."
        )

    def _is_satisfied(self, group: list[_Relation]) -> bool:
        return any(self.selected.matches(relation) for relation in group)

    def _unsatisfiable(self, group: list[_Relation], dependent: str) -> ResolutionError:
        reasons = []
        for relation in group:
            candidate = self._candidates.by_name.get(relation.name)
            if candidate is not None:
                reasons.append(f"{relation.name} is at version {candidate.version}")
            else:
                reasons.append(f"no package is or provides {relation.name}")
        return ResolutionError(
            f"{self._chain(dependent)} → {' | '.join(map(str, group))}: {'; '.join(reasons)}. "
            "Add a source that has it, or drop the package that needs it."
        )

    def _chain(self, name: str) -> str:
        """How a package entered the closure, from a requested package: `a → b → name`."""
        chain = [name]
        while (parent := self._pulled_by[chain[-1]]) is not None:
            chain.append(parent)
        return " → ".join(reversed(chain))
