"""The base image's Python, for which a venv is installed: its version, uv's name for its
platform, its interpreter's path in the image, and the values environment markers take there.

The image's interpreter never runs during a build: this is what the tool knows of it, given to
the venv commands as `--python-version`, `--python-platform` and `--interpreter`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from imagetool.venv.indexes import VenvBuildError

_VERSION = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class TargetPython:
    """The base image's Python, for which the venv is installed."""

    version: str
    """The full version, e.g. `3.11.2`: environment markers such as `python_full_version` use it."""
    platform: str
    """A `--python-platform` value of uv, e.g. `x86_64-manylinux_2_36` for Debian 12 on x86-64."""
    interpreter: str
    """The interpreter's absolute path in the image (e.g. `/usr/bin/python3.11`), which
    `bin/python` links to."""

    def __post_init__(self) -> None:
        if not _VERSION.fullmatch(self.version):
            raise VenvBuildError(
                f"The Python version {self.version!r} is not of the form X.Y.Z, e.g. 3.11.2."
            )
        if not posixpath.isabs(self.interpreter):
            raise VenvBuildError(f"The interpreter path {self.interpreter!r} is not absolute.")

    @property
    def minor_version(self) -> str:
        major, minor, _ = self.version.split(".")
        return f"{major}.{minor}"

    def marker_environment(self) -> dict[str, str]:
        """The values of PEP 508 environment markers on the target: CPython on Linux."""
        machine = self.platform.split("-", 1)[0]
        return {
            "implementation_name": "cpython",
            "implementation_version": self.version,
            "os_name": "posix",
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": self.version,
            "python_version": self.minor_version,
            "sys_platform": "linux",
        }
