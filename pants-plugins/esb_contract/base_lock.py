"""A Debian base's package lock (`packages.lock.json`): `debian-lock` writes it, the backend
reads what to download and the base's platform from it, and the image tool builds the root
filesystem from it. It holds one lock per architecture the base is built for, each resolved
against that architecture's indexes."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Mapping

from esb_contract.image_spec import SpecError
from esb_contract.platform_facts import PlatformFacts

FORMAT_VERSION = 3


class LockFormatError(SpecError):
    """A lock file is not one the image tool writes."""


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
    provides: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

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
class PackageLock:
    """The packages of one architecture."""

    architecture: str
    sources: tuple[LockedSource, ...]
    requested: tuple[str, ...]
    platform: PlatformFacts
    packages: tuple[LockedPackage, ...]


@dataclass(frozen=True)
class PackageLocks:
    """A lock file: the same requested packages, locked for each architecture."""

    locks: tuple[PackageLock, ...]

    def __post_init__(self) -> None:
        architectures = [lock.architecture for lock in self.locks]
        if not self.locks or len(set(architectures)) != len(architectures):
            raise LockFormatError(f"A lock needs each architecture once, not {architectures}.")
        if len({lock.requested for lock in self.locks}) != 1:
            raise LockFormatError("Every architecture's lock must request the same packages.")

    @property
    def requested(self) -> tuple[str, ...]:
        return self.locks[0].requested

    @property
    def architectures(self) -> tuple[str, ...]:
        return tuple(lock.architecture for lock in self.locks)

    def for_architecture(self, architecture: str) -> PackageLock:
        """The lock of `architecture`; a `LockFormatError` when the file has none."""
        for lock in self.locks:
            if lock.architecture == architecture:
                return lock
        raise LockFormatError(
            f"The package lock has no packages for {architecture}, only for "
            f"{', '.join(self.architectures)}."
        )

    def to_json(self) -> str:
        document = {
            "format_version": FORMAT_VERSION,
            "requested": list(self.requested),
            "architectures": {
                lock.architecture: {
                    "sources": [asdict(source) for source in lock.sources],
                    "platform": lock.platform.to_json(),
                    "packages": [asdict(package) for package in lock.packages],
                }
                for lock in self.locks
            },
        }
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PackageLocks:
        try:
            document = json.loads(text)
        except ValueError as e:
            raise LockFormatError(f"The package lock is not valid JSON: {e}.") from e
        if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
            found = document.get("format_version") if isinstance(document, dict) else None
            raise LockFormatError(
                f"The package lock is of format_version {found}, and this tool reads "
                f"{FORMAT_VERSION} (which locks each architecture of the base, and records each "
                "package's Provides to check the lock's closure)."
            )
        try:
            return cls._from_document(document)
        except (AttributeError, KeyError, TypeError, SpecError) as e:
            raise LockFormatError(f"The package lock lacks or misspells a field: {e}.") from e

    @classmethod
    def _from_document(cls, document: dict) -> PackageLocks:
        requested = tuple(document["requested"])
        return cls(
            tuple(
                PackageLock(
                    architecture=architecture,
                    sources=tuple(
                        LockedSource(**{**source, "components": tuple(source["components"])})
                        for source in section["sources"]
                    ),
                    requested=requested,
                    platform=PlatformFacts.from_json(section["platform"], where="platform"),
                    packages=tuple(LockedPackage(**package) for package in section["packages"]),
                )
                for architecture, section in sorted(document["architectures"].items())
            )
        )
