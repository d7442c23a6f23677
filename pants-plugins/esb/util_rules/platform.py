"""The facts about a base image that builds on top of it depend on, read from its package lock."""

from __future__ import annotations

from dataclasses import dataclass

# Debian architecture names → the platform names of tool downloads (`[esb-uv].known_versions`).
_DEBIAN_TO_TOOL_PLATFORM = {"amd64": "linux_x86_64", "arm64": "linux_arm64"}
_DEBIAN_TO_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}


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
    def uv_python_platform(self) -> str:
        """The platform uv installs wheels for, e.g. `x86_64-manylinux_2_36` for Debian 12."""
        major, minor = self.glibc_version.split(".")[:2]
        return f"{_DEBIAN_TO_MACHINE[self.architecture]}-manylinux_{major}_{minor}"

    @property
    def interpreter(self) -> str:
        """The base's Python, which the venv's `bin/python` links to."""
        major, minor = self.python_version.split(".")[:2]
        return f"/usr/bin/python{major}.{minor}"
