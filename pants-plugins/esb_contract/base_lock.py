"""A Debian base's package lock (`packages.lock.json`): `debian-lock` writes it, the backend
reads what to download and the base's platform from it, and the image tool builds the root
filesystem from it."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Mapping

from esb_contract.image_spec import SpecError
from esb_contract.platform_facts import PlatformFacts

FORMAT_VERSION = 2


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
    architecture: str
    sources: tuple[LockedSource, ...]
    requested: tuple[str, ...]
    platform: PlatformFacts
    packages: tuple[LockedPackage, ...]

    def to_json(self) -> str:
        document = {
            "format_version": FORMAT_VERSION,
            **asdict(self),
            "platform": self.platform.to_json(),
        }
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PackageLock:
        try:
            document = json.loads(text)
        except ValueError as e:
            raise LockFormatError(f"The package lock is not valid JSON: {e}.") from e
        if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
            found = document.get("format_version") if isinstance(document, dict) else None
            raise LockFormatError(
                f"The package lock is of format_version {found}, and this tool reads "
                f"{FORMAT_VERSION} (which records each package's Provides, to check the lock's "
                "closure)."
            )
        try:
            return cls._from_document(document)
        except (KeyError, TypeError, SpecError) as e:
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
            platform=PlatformFacts.from_json(document["platform"], where="platform"),
            packages=tuple(LockedPackage(**package) for package in document["packages"]),
        )
