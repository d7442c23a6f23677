"""What a checked service lock installs on its base: the image tool's `export-lock` writes it
(`lock-export.json`) and the backend reads it to plan the image's layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

from esb_contract.image_spec import JsonFields


@dataclass(frozen=True)
class LockedDistribution:
    """One distribution the lock installs from an index."""

    name: str
    """The normalised (PEP 503) name."""
    requirement: str
    """Its entry of the exported requirements.txt: `name==version`, any environment marker,
    and one `--hash` per file the lock allows."""
    index: str = ""
    """The index the lock takes it from, as `NAME=URL`, or empty for PyPI."""
    sdist_url: str = ""
    """For a distribution the lock pins with only a source distribution: the sdist's URL (its
    sha256 is the requirement's one hash); it is built into a wheel."""

    @property
    def pinned(self) -> str:
        """`name==version` of the requirement, for descriptions."""
        return self.requirement.split(" ", 1)[0].split(";", 1)[0].strip()

    def to_json(self) -> Dict[str, str]:
        return {
            "name": self.name,
            "requirement": self.requirement,
            "index": self.index,
            "sdist_url": self.sdist_url,
        }

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> LockedDistribution:
        fields = JsonFields(value, where)
        distribution = cls(
            name=fields.required("name", str),
            requirement=fields.required("requirement", str),
            index=fields.optional("index", str) or "",
            sdist_url=fields.optional("sdist_url", str) or "",
        )
        fields.no_others()
        return distribution


@dataclass(frozen=True)
class LockExport:
    distributions: Tuple[LockedDistribution, ...]
    local_directories: Tuple[str, ...] = ()
    """The directories (relative to the project, or to a workspace's root) of the local
    packages it installs, which are built into wheels."""

    def to_json(self) -> Dict[str, Any]:
        return {
            "distributions": [d.to_json() for d in self.distributions],
            "local_directories": list(self.local_directories),
        }

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> LockExport:
        fields = JsonFields(value, where)
        export = cls(
            tuple(
                LockedDistribution.from_json(d, where=f"{where}: distributions[{i}]")
                for i, d in enumerate(fields.required("distributions", list))
            ),
            tuple(fields.required("local_directories", list, of=str)),
        )
        fields.no_others()
        return export
