"""The facts about a base image that builds on top of it depend on, read from its package lock."""

from __future__ import annotations

import json
from dataclasses import dataclass

# Debian architecture names → the platform names of tool downloads (`[esb-uv].known_versions`).
_DEBIAN_TO_TOOL_PLATFORM = {"amd64": "linux_x86_64", "arm64": "linux_arm64"}


class BasePlatformError(ValueError):
    pass


@dataclass(frozen=True)
class BasePlatform:
    """Python version, C library and architecture of a base image, as its lock records them."""

    python_version: str
    glibc_version: str
    architecture: str

    @classmethod
    def from_lock(cls, lock: dict, *, lock_path: str, target: str) -> BasePlatform:
        try:
            facts = lock["platform"]
            platform = cls(
                python_version=str(facts["python_version"]),
                glibc_version=str(facts["glibc_version"]),
                architecture=str(facts["architecture"]),
            )
        except (KeyError, TypeError) as e:
            raise BasePlatformError(
                f"{lock_path} (the package lock of {target}) has no complete `platform` table "
                f"(missing {e}).\n\nFix: regenerate it with `pants esb-lock {target}`."
            )
        if platform.architecture not in _DEBIAN_TO_TOOL_PLATFORM:
            raise BasePlatformError(
                f"{lock_path} (the package lock of {target}) is for the architecture "
                f"{platform.architecture!r}; supported: {', '.join(sorted(_DEBIAN_TO_TOOL_PLATFORM))}."
            )
        return platform

    @property
    def tool_platform(self) -> str:
        """The image's platform, to pick binaries that go into the image."""
        return _DEBIAN_TO_TOOL_PLATFORM[self.architecture]

    @property
    def facts_json(self) -> bytes:
        return json.dumps(
            {
                "architecture": self.architecture,
                "glibc_version": self.glibc_version,
                "python_version": self.python_version,
            },
            sort_keys=True,
        ).encode()
