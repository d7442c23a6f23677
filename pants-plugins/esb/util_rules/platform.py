"""The facts about a base image that builds on top of it depend on: read from its package lock
(a base assembled from Debian packages), or from the image itself (a base on an upstream image,
by the image tool's `image-platform`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from esb_contract.architectures import ARCHITECTURES
from esb_contract.image_spec import SpecError
from esb_contract.platform_facts import PlatformFacts


def platform_suffix(architecture: str) -> str:
    """What tells one platform's steps from another's in their descriptions, when an image is
    built for several (and so each build names its architecture); nothing otherwise."""
    return f" for {architecture}" if architecture else ""


class BasePlatformError(ValueError):
    pass


@dataclass(frozen=True)
class BasePlatform:
    """Python version and interpreter, C library and architecture of a base image."""

    python_version: str
    glibc_version: str
    architecture: str
    interpreter: str
    """The base's Python, which the venv's `bin/python` links to, e.g. `/usr/bin/python3.11`
    (Debian's) or `/usr/local/bin/python3.12` (the official python images')."""

    @classmethod
    def from_lock(cls, facts: PlatformFacts, *, where: str) -> BasePlatform:
        """From a Debian base's lock, whose Python is Debian's, at `/usr/bin/python3.X`."""
        major_minor = ".".join((facts.python_version or "").split(".")[:2])
        interpreter = f"/usr/bin/python{major_minor}" if facts.python_version else None
        return cls._checked(facts, interpreter, where)

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any], *, where: str) -> BasePlatform:
        """From the facts `image-platform` reads from an image."""
        try:
            read = PlatformFacts.from_json(facts, where=f"The platform facts of {where}")
        except SpecError as e:
            raise BasePlatformError(str(e))
        return cls._checked(read, read.interpreter, where)

    @classmethod
    def _checked(cls, facts: PlatformFacts, interpreter: Optional[str], where: str) -> BasePlatform:
        python_version, glibc_version = facts.python_version, facts.glibc_version
        if python_version is None or glibc_version is None or interpreter is None:
            missing = [
                name
                for name, value in (
                    ("python_version", python_version),
                    ("glibc_version", glibc_version),
                    ("interpreter", interpreter),
                )
                if value is None
            ]
            raise BasePlatformError(
                f"{where} records no {', '.join(missing)}: a base needs a Python and glibc."
            )
        platform = cls(python_version, glibc_version, facts.architecture, interpreter)
        platform._check_architecture(where)
        return platform

    def _check_architecture(self, where: str) -> None:
        if self.architecture not in ARCHITECTURES:
            raise BasePlatformError(
                f"{where} is for the architecture {self.architecture!r}; supported: "
                f"{', '.join(sorted(ARCHITECTURES))}."
            )

    @property
    def tool_platform(self) -> str:
        """The image's platform, to pick binaries that go into the image."""
        return ARCHITECTURES[self.architecture].tool_platform

    @property
    def uv_python_platform(self) -> str:
        """The platform uv installs wheels for, e.g. `x86_64-manylinux_2_36` for Debian 12."""
        major, minor = self.glibc_version.split(".")[:2]
        return f"{ARCHITECTURES[self.architecture].machine}-manylinux_{major}_{minor}"
