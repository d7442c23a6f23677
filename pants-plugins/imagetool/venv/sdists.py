"""Locked distributions published only as a source distribution (sdist): found in `uv.lock`,
downloaded from the URL the lock records and checked against the lock's sha256, then built into
a wheel by `imagetool.venv.builds.build_wheel`."""

from __future__ import annotations

import base64
import hashlib
import netrc
import os
import posixpath
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from esb_contract.uv_lock import normalise_name
from esb_contract.uv_project import RELOCK_PLACEHOLDER
from imagetool.venv.indexes import HashMismatchError, IndexAccessError, VenvBuildError


@dataclass(frozen=True)
class LockedSdist:
    """A distribution that the lock pins with an sdist and no wheel at all."""

    name: str
    """The normalised (PEP 503) name."""
    version: str
    url: str
    sha256: str

    @property
    def display(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def key(self) -> str:
        """What build-constraints.txt records of it: a new sdist is a new build."""
        return f"{self.name}=={self.version} sha256:{self.sha256}"


def sdist_only_distributions(lock: Mapping[str, Any]) -> dict[tuple[str, str], LockedSdist]:
    """The distributions of a parsed `uv.lock` that have an sdist and no wheel, by
    `(name, version)`."""
    found: dict[tuple[str, str], LockedSdist] = {}
    packages = lock.get("package", [])
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict) or package.get("wheels"):
            continue
        sdist = package.get("sdist")
        if not isinstance(sdist, dict) or not isinstance(sdist.get("url"), str):
            continue
        hash_ = str(sdist.get("hash", ""))
        if not hash_.startswith("sha256:"):
            continue
        name, version = normalise_name(str(package.get("name"))), str(package.get("version"))
        found[(name, version)] = LockedSdist(name, version, sdist["url"], hash_[len("sha256:") :])
    return found


def fetch_sdist(sdist: LockedSdist, directory: Path, netrc_text: str = "") -> Path:
    """Download `sdist` into `directory` and check its sha256 against the lock's.

    The machine's proxies and CAs apply (`HTTPS_PROXY`, `SSL_CERT_FILE`); credentials come only
    from `netrc_text` (the index credentials the backend wrote), by host, as uv finds them.
    """
    # Imported when used: every build step is a process of its own (see `imagetool.cli`).
    import ssl
    import urllib.error
    import urllib.request

    parsed = urllib.parse.urlsplit(sdist.url)
    filename = posixpath.basename(urllib.parse.unquote(parsed.path))
    if not filename or filename in (".", ".."):
        raise VenvBuildError(f"The lock's sdist URL of {sdist.display} names no file: {sdist.url}")
    target = directory / filename
    request = urllib.request.Request(urllib.parse.urlunsplit(parsed._replace(fragment="")))
    authorization = _basic_authorization(parsed.hostname or "", netrc_text)
    if authorization:
        request.add_unredirected_header("Authorization", authorization)
    context = ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE"), capath=os.environ.get("SSL_CERT_DIR")
    )
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            with tempfile.NamedTemporaryFile(dir=directory, delete=False) as partial:
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    partial.write(chunk)
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise IndexAccessError(
                f"The package index refused access to the sdist of {sdist.display} "
                f"({e.code} {e.reason}): {_redacted(sdist.url)}.\n\nFix: give the index's "
                "credentials as for its wheels (UV_INDEX_<NAME>_USERNAME and "
                "UV_INDEX_<NAME>_PASSWORD, see docs/uv-locks.md)."
            ) from None
        raise VenvBuildError(
            f"Downloading the sdist of {sdist.display} failed: {e.code} {e.reason} "
            f"({_redacted(sdist.url)})."
        ) from None
    except (urllib.error.URLError, OSError) as e:
        raise VenvBuildError(
            f"Downloading the sdist of {sdist.display} failed: {e} ({_redacted(sdist.url)})."
        ) from None
    if digest.hexdigest() != sdist.sha256:
        Path(partial.name).unlink()
        raise HashMismatchError(
            f"The sdist of {sdist.display} that the index served ({_redacted(sdist.url)}) has "
            f"sha256 {digest.hexdigest()}, not the {sdist.sha256} the lock pins: the file was "
            "replaced on the index, or the index is not the one the lock was made with.\n\nFix: "
            f"if the new file is wanted, run {RELOCK_PLACEHOLDER}; otherwise fix "
            "the index."
        )
    shutil.move(partial.name, target)
    return target


def _basic_authorization(host: str, netrc_text: str) -> str:
    if not netrc_text.strip() or not host:
        return ""
    with tempfile.NamedTemporaryFile("w", suffix=".netrc") as file:
        file.write(netrc_text)
        file.flush()
        os.chmod(file.name, 0o600)
        try:
            entry = netrc.netrc(file.name).authenticators(host)
        except netrc.NetrcParseError:
            return ""
    if not entry:
        return ""
    login, _, password = entry
    token = base64.b64encode(f"{login}:{password or ''}".encode()).decode()
    return f"Basic {token}"


def _redacted(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.username or parsed.password:
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url
