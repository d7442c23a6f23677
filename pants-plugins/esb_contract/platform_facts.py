"""What builds on a base image need to know about it without looking inside: its architecture,
Python, C library and interpreter.

The image tool writes them (the `platform` table of a Debian base's `packages.lock.json`, from
the locked packages; `image-platform`'s output, from an upstream image) and the backend reads
them to lock and install its services' dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from esb_contract.image_spec import JsonFields


@dataclass(frozen=True)
class PlatformFacts:
    architecture: str
    """As Debian and OCI images name it, e.g. `amd64` (see `architectures.ARCHITECTURES`)."""
    glibc_version: Optional[str]
    """X.Y, e.g. `2.36`; None for a Debian base that locks no `libc6`."""
    python_version: Optional[str]
    """X.Y.Z, e.g. `3.11.2`; None for a Debian base that locks no Python."""
    interpreter: Optional[str] = None
    """Absolute, e.g. `/usr/local/bin/python3.12`; a Debian base's lock leaves it out, its
    Python being Debian's at `/usr/bin/pythonX.Y`."""

    def to_json(self) -> Dict[str, Any]:
        value: Dict[str, Any] = {
            "architecture": self.architecture,
            "glibc_version": self.glibc_version,
            "python_version": self.python_version,
        }
        if self.interpreter is not None:
            value["interpreter"] = self.interpreter
        return value

    @classmethod
    def from_json(cls, value: Any, *, where: str) -> PlatformFacts:
        fields = JsonFields(value, where)
        facts = cls(
            architecture=fields.required("architecture", str),
            glibc_version=fields.optional("glibc_version", str),
            python_version=fields.optional("python_version", str),
            interpreter=fields.optional("interpreter", str),
        )
        fields.no_others()
        return facts
