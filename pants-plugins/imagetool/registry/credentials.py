"""Registry credentials from a Docker config file (`config.json`), as the Docker CLI finds them.

For a registry, in Docker's order: its `credHelpers` entry, else the `credsStore`, else its
`auths` entry. A helper `X` is the program `docker-credential-X`, run as `X get` with the
server's name on stdin. Every lookup says where its credentials came from (or that there were
none), for error messages; a secret itself is never part of a message or a `repr`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagetool.errors import ToolError
from imagetool.registry.reference import DOCKER_HUB, normalize_registry

# The key under which Docker stores Docker Hub's credentials (and what it passes to helpers).
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
# What helpers print, with status 1, when they have nothing for a server.
_HELPER_NOT_FOUND = "credentials not found in native keychain"
_HELPER_TIMEOUT_SECONDS = 60


class CredentialsError(ToolError, RuntimeError):
    """A Docker config file or a credential helper cannot provide what it claims to."""


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class CredentialLookup:
    """The credentials for a registry (None: anonymous), and where they came from in words."""

    credentials: Credentials | None
    source: str
    """E.g. `credentials for 127.0.0.1:5000 from /root/.docker/config.json (auths)` or
    `no credentials (none for 127.0.0.1:5000 in /root/.docker/config.json)`."""


def default_docker_config_path(environ: Mapping[str, str], home: Path) -> Path:
    """Where Docker reads its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    directory = environ.get("DOCKER_CONFIG")
    return Path(directory, "config.json") if directory else home / ".docker" / "config.json"


@dataclass(frozen=True)
class DockerConfig:
    """The credential settings of one Docker config file (empty when the file does not exist)."""

    path: Path
    auths: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    creds_store: str | None = None
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    helper_search_path: str | None = None
    """Where to look for `docker-credential-*` programs, like `PATH` (None: `os.defpath`)."""

    @classmethod
    def load(cls, path: Path, *, helper_search_path: str | None) -> DockerConfig:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path, helper_search_path=helper_search_path)
        except (OSError, ValueError) as e:
            raise CredentialsError(f"Cannot read the Docker config {path}: {e}.") from e
        if not isinstance(data, dict):
            raise CredentialsError(f"The Docker config {path} is not a JSON object.")
        return cls(
            path,
            auths=data.get("auths") or {},
            creds_store=data.get("credsStore") or None,
            cred_helpers=data.get("credHelpers") or {},
            helper_search_path=helper_search_path,
        )

    def lookup(self, registry: str) -> CredentialLookup:
        registry = normalize_registry(registry)
        helper = self._helper_entry(registry)
        if helper is not None:
            setting, name = helper
            where = f"{self.path} ({setting}: docker-credential-{name})"
            credentials = self._run_helper(name, _server_name(registry))
        else:
            where = f"{self.path} (auths)"
            credentials = self._auths_entry(registry)
        if credentials is None:
            return CredentialLookup(None, f"no credentials (none for {registry} in {where})")
        return CredentialLookup(credentials, f"credentials for {registry} from {where}")

    def _helper_entry(self, registry: str) -> tuple[str, str] | None:
        for key, name in self.cred_helpers.items():
            if _registry_of_key(key) == registry:
                return "credHelpers", name
        return ("credsStore", self.creds_store) if self.creds_store else None

    def _auths_entry(self, registry: str) -> Credentials | None:
        for key, entry in self.auths.items():
            if _registry_of_key(key) != registry or not isinstance(entry, Mapping):
                continue
            where = f"{self.path}: auths[{key!r}]"
            if entry.get("auth"):
                try:
                    decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError, TypeError) as e:
                    raise CredentialsError(
                        f"{where}: `auth` is not base64 of `user:password`."
                    ) from e
                username, colon, secret = decoded.partition(":")
                if not colon:
                    raise CredentialsError(f"{where}: `auth` decodes to no `user:password` pair.")
                return Credentials(username, secret)
            if entry.get("username") or entry.get("password"):
                return Credentials(str(entry.get("username", "")), str(entry.get("password", "")))
        return None

    def _run_helper(self, name: str, server: str) -> Credentials | None:
        program = f"docker-credential-{name}"
        executable = shutil.which(program, path=self.helper_search_path or os.defpath)
        if executable is None:
            raise CredentialsError(
                f"{self.path} names the credential helper `{name}`, but `{program}` is not on the "
                f"search path ({self.helper_search_path or os.defpath}). Install it, or remove it "
                "from the config."
            )
        try:
            result = subprocess.run(
                [executable, "get"],
                input=server.encode("utf-8"),
                capture_output=True,
                timeout=_HELPER_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CredentialsError(f"`{program} get` for {server} failed to run: {e}.") from e
        output = result.stdout.decode("utf-8", errors="replace").strip()
        if result.returncode != 0:
            if _HELPER_NOT_FOUND in output:
                return None
            # On failure a helper prints its error, not a secret; keep only the first line.
            reason = (
                (output or result.stderr.decode("utf-8", errors="replace")).strip().splitlines()
            )
            raise CredentialsError(
                f"`{program} get` for {server} failed with status {result.returncode}: "
                f"{reason[0] if reason else '(no output)'}"
            )
        try:
            answer = json.loads(output)
            return Credentials(str(answer["Username"]), str(answer["Secret"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CredentialsError(
                f"`{program} get` for {server} did not print a JSON object with `Username` and `Secret`."
            ) from e


def _registry_of_key(key: str) -> str:
    """The registry a config key names: keys may be URLs, e.g. `https://index.docker.io/v1/`."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return normalize_registry(host)


def _server_name(registry: str) -> str:
    return DOCKER_HUB_SERVER if registry == DOCKER_HUB else registry
