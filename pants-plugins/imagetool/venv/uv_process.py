"""How the image tool runs uv: with the caller's environment shut out but for what reaching the
index needs, no settings file of the user, no Python downloads, and an explicit cache (or none),
so that the same inputs give the same result on every machine.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

# What uv reads as `--exclude-newer`: the backend sets it to lock as of `[esb-uv].exclude_newer`.
EXCLUDE_NEWER_ENV = "UV_EXCLUDE_NEWER"


@dataclass(frozen=True)
class Uv:
    """How to run uv: nothing of the caller's environment reaches it but `network_env`.

    `network_env` holds what uv needs to reach the index, e.g. `SSL_CERT_FILE` and proxy
    variables, and `UV_EXCLUDE_NEWER` when a resolution is fixed in time. Without a
    `cache_dir` uv keeps no cache, and downloads every wheel each time.
    """

    binary: Path
    cache_dir: Optional[Path] = None
    network_env: Mapping[str, str] = field(default_factory=dict)

    def resolving_as_of(self, exclude_newer: Optional[str]) -> Uv:
        """This uv, resolving as of `exclude_newer` (uv's `--exclude-newer`), or with no cutoff
        when it is None, whatever the caller's environment set."""
        env = {k: v for k, v in self.network_env.items() if k != EXCLUDE_NEWER_ENV}
        if exclude_newer is not None:
            env[EXCLUDE_NEWER_ENV] = exclude_newer
        return dataclasses.replace(self, network_env=env)

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        stdin: str = "",
        extra_env: Mapping[str, str] = {},
    ) -> subprocess.CompletedProcess[str]:
        cache = (
            ["--cache-dir", str(self.cache_dir.absolute())] if self.cache_dir else ["--no-cache"]
        )
        env = {
            **self.network_env,
            # Without it uv reads the user's `~/.config/uv/uv.toml` (found through the password
            # database when HOME is unset), which would make the result depend on the machine.
            "XDG_CONFIG_HOME": os.devnull,
            # This process's scratch directory (the backend's is inside the sandbox): uv's own
            # files, such as its build environments' locks, would otherwise be left in /tmp.
            "TMPDIR": tempfile.gettempdir(),
            **extra_env,
        }
        return subprocess.run(
            [str(self.binary.absolute()), *args, *cache, "--no-python-downloads", "--no-progress"],
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
        )
