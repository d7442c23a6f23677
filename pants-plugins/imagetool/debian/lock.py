"""Resolve requested Debian packages to their dependency closure, and the lock that pins it.

Resolution follows Depends and Pre-Depends (alternatives, virtual packages through Provides,
version constraints) from the requested packages only: Essential packages are not implied,
because an image runs no package manager and no maintainer scripts. Each package name has one
candidate, its highest version across all sources, as apt's default policy would choose.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import deque
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

from debian.deb822 import PkgRelation
from debian.debian_support import Version, version_compare

from imagetool.debian.archive import SuiteIndex
from imagetool.errors import ToolError

FORMAT_VERSION = 1

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


class LockFormatError(ToolError):
    """A lock file is not one this tool writes."""


@dataclass(frozen=True)
class IndexEntry:
    """A binary package as a Packages index describes it."""

    name: str
    version: str
    architecture: str
    url: str
    sha256: str
    size: int
    depends: str
    pre_depends: str
    provides: str
    conflicts: str
    breaks: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    url: str
    sha256: str
    size: int
    depends: str
    pre_depends: str

    @property
    def filename(self) -> str:
        """The pool file name, `<name>_<version without epoch>_<architecture>.deb`."""
        return urllib.parse.unquote(self.url.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class LockedSource:
    url: str
    suite: str
    components: tuple[str, ...]
    release_date: str
    index_sha256: Mapping[str, str]


@dataclass(frozen=True)
class PlatformFacts:
    """What later build steps need to know about the base without looking inside it."""

    architecture: str
    glibc_version: str | None
    python_version: str | None


@dataclass(frozen=True)
class PackageLock:
    architecture: str
    sources: tuple[LockedSource, ...]
    requested: tuple[str, ...]
    platform: PlatformFacts
    packages: tuple[LockedPackage, ...]

    def to_json(self) -> str:
        document = {"format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PackageLock:
        try:
            document = json.loads(text)
        except ValueError as e:
            raise LockFormatError(f"The package lock is not valid JSON: {e}.") from e
        if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
            raise LockFormatError(
                f"The package lock is not of format_version {FORMAT_VERSION}, the one this tool "
                "reads. Regenerate it with `imagetool debian-lock`."
            )
        try:
            return cls._from_document(document)
        except (KeyError, TypeError) as e:
            raise LockFormatError(f"The package lock lacks or misspells a field: {e}.") from e

    @classmethod
    def _from_document(cls, document: dict) -> PackageLock:
        return cls(
            architecture=document["architecture"],
            sources=tuple(
                LockedSource(**{**source, "components": tuple(source["components"])})
                for source in document["sources"]
            ),
            requested=tuple(document["requested"]),
            platform=PlatformFacts(**document["platform"]),
            packages=tuple(LockedPackage(**package) for package in document["packages"]),
        )


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


def lock_packages(suites: Sequence[SuiteIndex], architecture: str, requested: Iterable[str]) -> PackageLock:
    requested_names = tuple(sorted(set(requested)))
    closure = resolve_closure(index_entries(suites, architecture), requested_names)
    packages = tuple(
        LockedPackage(
            name=entry.name,
            version=entry.version,
            architecture=entry.architecture,
            url=entry.url,
            sha256=entry.sha256,
            size=entry.size,
            depends=entry.depends,
            pre_depends=entry.pre_depends,
        )
        for entry in closure
    )
    return PackageLock(
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
    return Version(package.version).upstream_version


def resolve_closure(entries: Iterable[IndexEntry], requested: Sequence[str]) -> list[IndexEntry]:
    """The requested packages and everything they depend on, sorted by name."""
    closure = _Closure(entries)
    for name in requested:
        closure.request(name)
    closure.follow_dependencies()
    closure.check_conflicts()
    return sorted(closure.selected.values(), key=lambda entry: entry.name)


@dataclass(frozen=True)
class _Relation:
    name: str
    version: tuple[str, str] | None

    def __str__(self) -> str:
        return f"{self.name} ({self.version[0]} {self.version[1]})" if self.version else self.name


def _relations(field: str) -> list[list[_Relation]]:
    """A relationship field as AND-ed groups of OR-ed alternatives."""
    if not field:
        return []
    return [
        [_Relation(alternative["name"], alternative["version"]) for alternative in group]
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


class _Closure:
    """The resolution state: which package each name resolved to, and who pulled it in."""

    def __init__(self, entries: Iterable[IndexEntry]) -> None:
        self._candidates: dict[str, IndexEntry] = {}
        for entry in entries:
            current = self._candidates.get(entry.name)
            if current is None or version_compare(entry.version, current.version) > 0:
                self._candidates[entry.name] = entry
        # virtual name -> [(provider, provided version or None)], providers sorted by name
        self._providers: dict[str, list[tuple[IndexEntry, str | None]]] = {}
        for entry in sorted(self._candidates.values(), key=lambda entry: entry.name):
            for group in _relations(entry.provides):
                for provided in group:
                    version = provided.version[1] if provided.version else None
                    self._providers.setdefault(provided.name, []).append((entry, version))
        self.selected: dict[str, IndexEntry] = {}
        self._pulled_by: dict[str, str | None] = {}
        self._pending: deque[tuple[list[_Relation], str]] = deque()
        # Groups with a choice wait until every unambiguous dependency is selected, so that a
        # choice prefers what the closure holds anyway over an alternative's first member.
        self._deferred: deque[tuple[list[_Relation], str]] = deque()

    def request(self, name: str) -> None:
        if name not in self._candidates:
            providers = sorted({entry.name for entry, _ in self._providers.get(name, [])})
            hint = (
                f"it is a virtual package provided by {', '.join(providers)}: request one of them"
                if providers
                else "check the spelling, the sources and their components"
            )
            raise ResolutionError(f"The requested package {name} is in none of the indexes: {hint}.")
        self._select(self._candidates[name], pulled_by=None)

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
        for entry in sorted(self.selected.values(), key=lambda entry: entry.name):
            for field, value in (("Conflicts", entry.conflicts), ("Breaks", entry.breaks)):
                for group in _relations(value):
                    for relation in group:
                        for other in self._selected_matches(relation):
                            if other.name != entry.name:
                                raise ResolutionError(
                                    f"{self._chain(entry.name)} ({entry}) declares "
                                    f"'{field}: {relation}', which {self._chain(other.name)} "
                                    f"({other}) matches. Request packages that can be installed "
                                    "together."
                                )

    def _select(self, entry: IndexEntry, pulled_by: str | None) -> None:
        if entry.name in self.selected:
            return
        self.selected[entry.name] = entry
        self._pulled_by[entry.name] = pulled_by
        for group in _relations(entry.pre_depends) + _relations(entry.depends):
            self._pending.append((group, entry.name))

    def _choices(self, relation: _Relation) -> list[IndexEntry]:
        """The packages that could satisfy the relation: the real package, else its providers."""
        real = self._candidates.get(relation.name)
        if real is not None and _satisfies(real.version, relation.version):
            return [real]
        return [
            provider
            for provider, provided_version in self._providers.get(relation.name, [])
            if _satisfies(provided_version, relation.version)
        ]

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

    def _selected_matches(self, relation: _Relation) -> list[IndexEntry]:
        matches = []
        real = self.selected.get(relation.name)
        if real is not None and _satisfies(real.version, relation.version):
            matches.append(real)
        for provider, provided_version in self._providers.get(relation.name, []):
            if provider.name in self.selected and _satisfies(provided_version, relation.version):
                matches.append(provider)
        return matches

    def _is_satisfied(self, group: list[_Relation]) -> bool:
        return any(self._selected_matches(relation) for relation in group)

    def _unsatisfiable(self, group: list[_Relation], dependent: str) -> ResolutionError:
        reasons = []
        for relation in group:
            candidate = self._candidates.get(relation.name)
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
