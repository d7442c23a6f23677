"""The package indexes of a service's uv project, their credentials, and reading its TOML files.

A project declares its indexes as uv reads them, `[[tool.uv.index]]` tables with a `name` and
a `url` in `pyproject.toml`, and `uv.lock` records for each package the index (`source =
{ registry = URL }`) it came from. Credentials never appear in either file: they would be
committed, and enter every cache key derived from the files. uv takes them from
`UV_INDEX_<NAME>_USERNAME` / `UV_INDEX_<NAME>_PASSWORD` or a netrc file; the backend turns
both into one netrc file per index, named `<NAME>.netrc` (see `index_env_name`), in a directory
that is not part of any process's key, and the image tool gives uv that file through `NETRC`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

import tomllib

from esb_contract.uv_project import RELOCK_PLACEHOLDER
from imagetool.errors import ToolError

PYPI_INDEX_URL = "https://pypi.org/simple"

_CONFLICT_MARKER = re.compile(r"^(<<<<<<<|=======|>>>>>>>)( |$)", re.MULTILINE)
_UNAUTHORIZED = re.compile(r"\b(401 Unauthorized|403 Forbidden)\b|[Mm]issing credentials")
_HASH_MISMATCH = re.compile(r"Hash mismatch for `(?P<distribution>[^`]+)`")


class VenvBuildError(ToolError):
    """A service's venv cannot be built; the message says why and how to fix it."""


class LockError(VenvBuildError):
    """The service's `uv.lock` is missing, out of date, or locked for another Python."""


class ProjectFileError(LockError):
    """A service's pyproject.toml or uv.lock cannot be read, or declares an index wrongly."""


class IndexAccessError(VenvBuildError):
    """The index refused uv: no credentials, or wrong ones."""


class HashMismatchError(VenvBuildError):
    """The index served a file whose sha256 is not the one the lock pins."""


def read_toml(path: Path, shown: str, fix: str) -> dict[str, Any]:
    """The table of a TOML file, or an error naming `shown`, the line, and `fix`.

    Unresolved merge-conflict markers get a message of their own: they are the usual way a
    committed pyproject.toml or uv.lock stops being TOML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ProjectFileError(f"{shown} is not UTF-8 text ({e}).\n\nFix: {fix}.") from None
    conflict = _CONFLICT_MARKER.search(text)
    if conflict:
        line = text.count("\n", 0, conflict.start()) + 1
        raise ProjectFileError(
            f"{shown} has unresolved merge-conflict markers (`{conflict.group(1)}` at line "
            f"{line}): a merge or rebase left both sides of a conflict in it.\n\nFix: resolve "
            f"the conflict (keep the right lines, delete the `<<<<<<<`, `=======` and "
            f"`>>>>>>>` lines), then {fix}."
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProjectFileError(
            f"{shown} is malformed: it is not valid TOML ({e}).\n\nFix: {fix}."
        ) from None


def index_env_name(name: str) -> str:
    """The part of uv's credential variables that names an index: `UV_INDEX_<this>_USERNAME`.

    uv upper-cases the index name and replaces every character that is not an ASCII letter or
    digit with `_`.
    """
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True)
class PackageIndex:
    name: str
    url: str

    @property
    def username_variable(self) -> str:
        return f"UV_INDEX_{index_env_name(self.name)}_USERNAME"

    @property
    def password_variable(self) -> str:
        return f"UV_INDEX_{index_env_name(self.name)}_PASSWORD"

    @property
    def netrc_file(self) -> str:
        return f"{index_env_name(self.name)}.netrc"

    def argument(self) -> str:
        """`NAME=URL`, as `--index` takes it."""
        return f"{self.name}={self.url}"

    @classmethod
    def from_argument(cls, argument: str) -> PackageIndex:
        name, equals, url = argument.partition("=")
        if not equals or not name or not url:
            raise ToolError(f"--index {argument!r} is not of the form NAME=URL.")
        return cls(name, url)


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=f"****@{netloc}").geturl()


def project_indexes(pyproject: dict[str, Any], shown_pyproject: str) -> tuple[PackageIndex, ...]:
    """The named indexes of `[[tool.uv.index]]`; refuses unnamed ones and URLs with credentials."""
    tool_uv = pyproject.get("tool", {}).get("uv", {}) if isinstance(pyproject, dict) else {}
    entries = tool_uv.get("index", []) if isinstance(tool_uv, dict) else []
    indexes = []
    for entry in entries if isinstance(entries, list) else [entries]:
        name = entry.get("name") if isinstance(entry, dict) else None
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str):
            raise ProjectFileError(
                f"{shown_pyproject}: a [[tool.uv.index]] table has no `url`.\n\nFix: give each "
                'index a name and a URL, e.g. `name = "internal"`, `url = '
                '"https://pypi.internal.example/simple"`.'
            )
        if not isinstance(name, str) or not name:
            raise ProjectFileError(
                f"{shown_pyproject}: the index {_redacted(url) if _has_credentials(url) else url}"
                " in [[tool.uv.index]] has no `name`; credentials are given per index name.\n\n"
                'Fix: add `name = "<name>"` to the table.'
            )
        if _has_credentials(url):
            variables = PackageIndex(name, url)
            raise ProjectFileError(
                f"{shown_pyproject}: the URL of the index `{name}` ({_redacted(url)}) holds "
                "credentials. They would be committed, written into uv.lock and enter the cache "
                f"keys of every build.\n\nFix: remove the `user:password@` part from the URL and "
                f"set {variables.username_variable} and {variables.password_variable} in the "
                "environment of `pants` (or put the host in your netrc file); see "
                "docs/uv-locks.md."
            )
        indexes.append(PackageIndex(name, url))
    return tuple(indexes)


def check_lock_urls(lock: dict[str, Any], shown_lock: str, relock: str) -> None:
    """Refuse a lock that records credentials in an index or file URL."""
    found = []
    packages = lock.get("package", [])
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict):
            continue
        urls = [_registry(package) or ""]
        for entry in [package.get("sdist"), *_list(package.get("wheels"))]:
            urls.append(entry.get("url", "") if isinstance(entry, dict) else "")
        if any(isinstance(url, str) and _has_credentials(url) for url in urls):
            found.append(str(package.get("name", "?")))
    if found:
        raise ProjectFileError(
            f"{shown_lock} records credentials in the URLs of {', '.join(sorted(set(found)))}: "
            "the index was given with `user:password@` in its URL when the lock was made. A "
            "lock is committed and enters cache keys; it must not hold secrets.\n\nFix: remove "
            "the credentials from the index URL in pyproject.toml, give them by "
            "UV_INDEX_<NAME>_USERNAME / UV_INDEX_<NAME>_PASSWORD or netrc, and "
            f"{relock.removeprefix('run ')}; then rotate the exposed password."
        )


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _registry(package: dict[str, Any]) -> Optional[str]:
    source = package.get("source")
    registry = source.get("registry") if isinstance(source, dict) else None
    return registry if isinstance(registry, str) else None


def distribution_indexes(
    lock: dict[str, Any], indexes: Iterable[PackageIndex], shown_lock: str, shown_pyproject: str
) -> dict[tuple[str, str], PackageIndex]:
    """The index of each `(name, version)` the lock takes from an index other than PyPI.

    A registry the project does not declare (e.g. one given to `uv lock` by `UV_INDEX`) has no
    name to find its credentials by, and is refused.
    """
    declared = list(indexes)
    found: dict[tuple[str, str], PackageIndex] = {}
    undeclared = set()
    for package in _list(lock.get("package")):
        registry = _registry(package) if isinstance(package, dict) else None
        if registry is None or same_url(registry, PYPI_INDEX_URL):
            continue
        index = next((i for i in declared if same_url(i.url, registry)), None)
        if index is None:
            undeclared.add(registry)
            continue
        found[(str(package.get("name")), str(package.get("version")))] = index
    if undeclared:
        raise ProjectFileError(
            f"{shown_lock} takes packages from {', '.join(sorted(undeclared))}, which "
            f"{shown_pyproject} does not declare as a [[tool.uv.index]]: the build would not "
            "know where to fetch them, nor which credentials to use.\n\nFix: declare the "
            'index in pyproject.toml (`[[tool.uv.index]]` with `name = "..."` and its `url`) '
            "and re-lock."
        )
    return found


def credentials_netrc(credentials_dir: Optional[Path], indexes: Iterable[PackageIndex]) -> str:
    """The netrc entries the backend wrote for `indexes` (empty when it wrote none)."""
    if credentials_dir is None:
        return ""
    entries = []
    for index in indexes:
        path = credentials_dir / index.netrc_file
        if path.is_file():
            entries.append(path.read_text())
    return "".join(entries)


def _named_in(index: PackageIndex, uv_output: str) -> bool:
    hostname = urlsplit(index.url).hostname
    return hostname is not None and hostname in uv_output


def access_error(uv_output: str, indexes: Iterable[PackageIndex]) -> Optional[IndexAccessError]:
    """A message naming the indexes and the variables to set, when uv was refused access."""
    if not _UNAUTHORIZED.search(uv_output):
        return None
    listed = [index for index in indexes if _named_in(index, uv_output)] or list(indexes)
    if not listed:
        return None
    lines = "".join(
        f"  - `{index.name}` ({index.url}): set {index.username_variable} and "
        f"{index.password_variable}\n"
        for index in listed
    )
    return IndexAccessError(
        "The package index refused uv access (no credentials, or wrong ones):\n"
        f"{lines}\nFix: export those variables in the environment that runs `pants`, or add "
        "the host to your netrc file (`NETRC`, default ~/.netrc); see docs/uv-locks.md. They "
        f"never enter a cache key or an image.\n\nuv said:\n{uv_output}"
    )


def hash_mismatch_error(uv_output: str) -> Optional[HashMismatchError]:
    mismatch = _HASH_MISMATCH.search(uv_output)
    if not mismatch:
        return None
    distribution = mismatch.group("distribution")
    return HashMismatchError(
        f"{distribution}: the file the index served does not have the sha256 the lock pins. "
        "Either the index now serves another file under the same name and version (re-uploaded "
        "or replaced), or the lock was made against another index.\n\nFix: re-lock the service "
        f"({RELOCK_PLACEHOLDER}) if the new file is the one you want, or check that "
        f"the index serves the locked file.\n\nuv said:\n{uv_output}"
    )
