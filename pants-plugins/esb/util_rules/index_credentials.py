"""Credentials of the private package indexes a service's uv project names, for uv in the image
tool's processes, outside every cache key.

uv takes an index's credentials from `UV_INDEX_<NAME>_USERNAME` / `UV_INDEX_<NAME>_PASSWORD` or a
netrc file (`NETRC`, default `~/.netrc`). A process's environment and inputs are part of its
cache key, which a remote cache stores (the environment in plain text), so neither carries
them. Instead, each time Pants runs, a rule reads them from the environment of `pants` and
writes one netrc file per index (`<NAME>.netrc`, mode 0600) into a named cache: a directory of
the machine that processes see through `append_only_caches`, whose contents are not part of
any key. The processes that reach an index are keyed by the index's name and URL alone, so a
layer built with one user's credentials is the same cache entry for everyone.
"""

from __future__ import annotations

import netrc
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from pants.engine.env_vars import EnvironmentVars, EnvironmentVarsRequest
from pants.engine.rules import Get, _uncacheable_rule, collect_rules
from pants.option.global_options import GlobalOptions
from pants.util.frozendict import FrozenDict

from esb.toml_files import toml_table
from esb_contract import flags

INDEX_CREDENTIALS_CACHE = "esb_index_credentials"
INDEX_CREDENTIALS_DIR = ".esb-index-credentials"
CREDENTIALS_CACHES = FrozenDict({INDEX_CREDENTIALS_CACHE: INDEX_CREDENTIALS_DIR})


@dataclass(frozen=True)
class PackageIndex:
    name: str
    url: str

    @property
    def env_name(self) -> str:
        """uv's spelling of the name in its variables: upper case, `_` for anything else than
        ASCII letters and digits."""
        return re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @property
    def username_variable(self) -> str:
        return f"UV_INDEX_{self.env_name}_USERNAME"

    @property
    def password_variable(self) -> str:
        return f"UV_INDEX_{self.env_name}_PASSWORD"

    @property
    def argument(self) -> str:
        """`NAME=URL`, as the image tool's `--index` takes it."""
        return f"{self.name}={self.url}"

    @classmethod
    def from_argument(cls, argument: str) -> PackageIndex:
        name, _, url = argument.partition("=")
        return cls(name, url)


def project_indexes(pyproject: bytes) -> tuple[PackageIndex, ...]:
    """The named `[[tool.uv.index]]` entries of a `pyproject.toml`.

    A file that does not parse, or an entry without a name or URL, names none: the image tool's
    lock check reports those with their fix.
    """
    tool = toml_table(pyproject).get("tool")
    tool_uv = tool.get("uv") if isinstance(tool, dict) else None
    entries = tool_uv.get("index", []) if isinstance(tool_uv, dict) else []
    return tuple(
        PackageIndex(entry["name"], entry["url"])
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("url"), str)
    )


def credentials_argv() -> tuple[str, ...]:
    return (flags.CREDENTIALS_DIR, INDEX_CREDENTIALS_DIR)


@dataclass(frozen=True)
class IndexCredentialsRequest:
    indexes: tuple[PackageIndex, ...]


@dataclass(frozen=True)
class IndexCredentials:
    """The netrc files of the requested indexes are written (or removed, for indexes without
    credentials); `with_credentials` names the indexes that have them."""

    with_credentials: tuple[str, ...]


def netrc_entry(host: str, username: str, password: str) -> str:
    for value in (username, password):
        if not value or any(c.isspace() or c in "\"'\\" for c in value):
            raise ValueError("netrc values cannot hold whitespace, quotes or backslashes")
    return f"machine {host} login {username} password {password}\n"


def _netrc_credentials(path: Optional[str], host: str) -> Optional[tuple[str, str]]:
    if not path or not os.path.isfile(path):
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    return (found[0], found[2] or "") if found else None


def _write_private(path: Path, content: str) -> None:
    """Write `content` to `path` (mode 0600) in one step: a concurrent reader sees the old or
    the new file, never a part."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class IndexCredentialsError(ValueError):
    """Credentials that cannot be handed to uv."""


# Not cached: the variables and the netrc file are read anew, and the files rewritten, in every
# run, so that a rotated or removed credential takes effect at once.
@_uncacheable_rule
async def write_index_credentials(
    request: IndexCredentialsRequest, global_options: GlobalOptions
) -> IndexCredentials:
    names = [v for i in request.indexes for v in (i.username_variable, i.password_variable)]
    env = await Get(EnvironmentVars, EnvironmentVarsRequest((*names, "NETRC", "HOME")))
    home = env.get("HOME")
    netrc_path = env.get("NETRC") or (os.path.join(home, ".netrc") if home else None)
    directory = Path(global_options.named_caches_dir) / INDEX_CREDENTIALS_CACHE
    directory.mkdir(parents=True, exist_ok=True)
    with_credentials = []
    for index in request.indexes:
        host = urlsplit(index.url).hostname or ""
        username, password = env.get(index.username_variable), env.get(index.password_variable)
        if not (username or password):
            username, password = _netrc_credentials(netrc_path, host) or (None, None)
        target = directory / f"{index.env_name}.netrc"
        if not (username or password):
            target.unlink(missing_ok=True)
            continue
        try:
            entry = netrc_entry(host, username or "", password or "")
        except ValueError as e:
            raise IndexCredentialsError(
                f"The credentials of the package index `{index.name}` ({index.url}) cannot be "
                f"given to uv: {e}, or one of {index.username_variable} and "
                f"{index.password_variable} is empty.\n\nFix: set both to values without "
                "whitespace or quotes (see docs/uv-locks.md)."
            ) from None
        _write_private(target, entry)
        with_credentials.append(index.name)
    return IndexCredentials(tuple(with_credentials))


def rules():
    return collect_rules()
