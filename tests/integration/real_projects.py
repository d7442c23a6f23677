"""Real open-source Python projects, laid out as services the way their authors publish them.

The repository holds none of their code: each project's sdist is downloaded from PyPI when a
test needs it, checked against the sha256 pinned here, and unpacked as a service directory, to
which only a BUILD file is added. They are locked as of `EXCLUDE_NEWER` (`[esb-uv].exclude_newer`
on the command line of `pants esb-lock`), so their locks are the same on every day.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import textwrap
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from docker import DockerClient

from integration.checkouts import Checkout, PantsRun
from integration.containers import exec_python, http_get_script, running_container

EXCLUDE_NEWER = "2026-11-01T00:00:00Z"
PYPI_SIMPLE = "https://pypi.org/simple"
DOWNLOAD_TIMEOUT_S = 120
BASE = "//base:esb-service-base"
SERVICE_ACCOUNT = "esb"


@dataclass(frozen=True)
class Sdist:
    """A source distribution on PyPI, pinned by version and sha256."""

    name: str
    version: str
    sha256: str

    @property
    def filename_pattern(self) -> re.Pattern[str]:
        # Older sdists keep the project's spelling, newer ones normalise it (PEP 625).
        spelled = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", self.name))
        return re.compile(rf"(?i)^{spelled}-{re.escape(self.version)}\.tar\.gz$")

    def fetch(self, cache: Path) -> Path:
        """The sdist's file in `cache`, downloaded once and checked against the pinned sha256."""
        cached = cache / f"{self.name}-{self.version}.tar.gz"
        if cached.is_file() and _sha256(cached.read_bytes()) == self.sha256:
            return cached
        page_url = f"{PYPI_SIMPLE}/{self.name}/"
        page = _get(page_url).decode()
        for href in re.findall(r'href="([^"]+)"', page):
            url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
            filename = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            if self.filename_pattern.match(filename) and fragment == f"sha256={self.sha256}":
                content = _get(url)
                if _sha256(content) != self.sha256:
                    raise AssertionError(f"{url} does not have the pinned sha256 {self.sha256}")
                cache.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(content)
                return cached
        raise AssertionError(
            f"{page_url} lists no sdist of {self.name} {self.version} with sha256 {self.sha256}"
        )


@dataclass(frozen=True)
class RealService:
    """A service directory under `services/`: a project's sdist unpacked as it is, or (with no
    sdist) a project of ours that deploys a published application by depending on it."""

    directory: str
    build_file: str
    sdist: Sdist | None = None
    pyproject: str = ""
    parent: str = "services"

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.directory}"

    @property
    def target(self) -> str:
        return f"{self.path}:{self.directory}"

    def lay_out(self, checkout: Checkout, sdists: Path) -> None:
        service = checkout.root / self.path
        if self.sdist is not None:
            _unpack_sdist(self.sdist.fetch(sdists), service)
        else:
            service.mkdir(parents=True)
            (service / "pyproject.toml").write_text(self.pyproject)
        (service / "BUILD").write_text(self.build_file)


def _service_build(
    name: str,
    command: Sequence[str],
    ports: Sequence[str] = (),
    *,
    whole_directory: bool = False,
    namespace: str = "real",
    extras: Sequence[str] = (),
    volumes: Sequence[str] = (),
) -> str:
    ports_line = f"    ports={list(ports)!r},\n" if ports else ""
    extras_line = f"    extras={list(extras)!r},\n" if extras else ""
    volumes_line = f"    volumes={list(volumes)!r},\n" if volumes else ""
    # An unpacked sdist ships as a Dockerfile's `COPY . /app` would: its code is not under
    # src/, and its build reads PKG-INFO, the readme and the license.
    sources_line = '    sources=["**/*"],\n' if whole_directory else ""
    return (
        "esb_service_image(\n"
        f'    name="{name}",\n'
        f'    base="{BASE}",\n'
        f'    repository="{namespace}/{name}",\n'
        f'    user="{SERVICE_ACCOUNT}",\n'
        f"    command={list(command)!r},\n"
        f"{ports_line}"
        f"{extras_line}"
        f"{volumes_line}"
        f"{sources_line}"
        ")\n"
    )


# A WSGI service in a flat layout, started by its console script: hatchling (unpinned by its
# authors) builds it, with its version read from a module; entry points of its own; the
# optional-dependency group that gives it password checks installed too; a volume for the
# packages it serves.
PYPISERVER_EXTRA = ("passlib", "1.7.4")
# Where a deployment keeps the packages it serves.
PYPISERVER_VOLUME = "/data/packages"
PYPISERVER_SDIST = Sdist(
    "pypiserver", "2.4.2", "131bc2a31ea1eab0e0104ace799dff139789b215465e3d326c65f56df5c160cb"
)
PYPISERVER = RealService(
    directory="pypiserver",
    sdist=PYPISERVER_SDIST,
    build_file=_service_build(
        "pypiserver",
        ["pypi-server", "run", "--port", "8080", "/app"],
        ["8080/tcp"],
        whole_directory=True,
        extras=[PYPISERVER_EXTRA[0]],
        volumes=[PYPISERVER_VOLUME],
    ),
)
# A CLI started by its console script; setuptools-scm gives its version (from PKG-INFO: an
# unpacked sdist has no git history).
TABULATE_SDIST = Sdist(
    "tabulate", "0.10.0", "e2cfde8f79420f6deeffdeda9aaec3b6bc5abce947655d17ac662b126e48a60d"
)
TABULATE = RealService(
    directory="tabulate",
    sdist=TABULATE_SDIST,
    build_file=_service_build("tabulate", ["tabulate", "--help"], whole_directory=True),
)
# A published Flask application deployed by a project of ours that depends on it: two of its
# dependencies (docopt, path-and-address) publish only sdists.
GRIP = RealService(
    directory="docs-preview",
    pyproject=textwrap.dedent(
        """\
        [project]
        name = "docs-preview"
        version = "1.0.0"
        requires-python = ">=3.11"
        dependencies = ["grip==4.6.2"]
        """
    ),
    build_file=_service_build("docs-preview", ["grip", "0.0.0.0:8080"], ["8080/tcp"]),
)
REAL_SERVICES = (PYPISERVER, TABULATE, GRIP)

# A uv workspace of published projects: two services and the library both depend on, each a
# member unpacked from its sdist. Only the root's pyproject.toml and the BUILD files are ours:
# the root's `[tool.uv.sources]` makes every member take the library (and pypiserver's test
# group the build CLI) from the workspace, as uv requires of a dependency that is a member.
WORKSPACE_ROOT = "realws"
WORKSPACE_PYPROJECT = textwrap.dedent(
    """\
    [tool.uv.workspace]
    members = ["services/*", "libs/*"]

    [tool.uv.sources]
    build = { workspace = true }
    packaging = { workspace = true }
    """
)
# Its own files, owned for `dependents` and `--changed-since`.
WORKSPACE_BUILD = (
    'files(name="uv-workspace", sources=["pyproject.toml", "uv.lock", "build-constraints.txt"])\n'
)
# A WSGI server: the same project as PYPISERVER, here depending on the workspace's packaging.
WORKSPACE_PYPISERVER = RealService(
    directory="pypiserver",
    parent=f"{WORKSPACE_ROOT}/services",
    sdist=PYPISERVER.sdist,
    build_file=_service_build(
        "pypiserver",
        ["pypi-server", "run", "--port", "8080", "/app"],
        ["8080/tcp"],
        whole_directory=True,
        namespace=WORKSPACE_ROOT,
    ),
)
# A CLI started by its console script; flit gives its version dynamically.
WORKSPACE_BUILD_CLI = RealService(
    directory="build",
    parent=f"{WORKSPACE_ROOT}/services",
    sdist=Sdist(
        "build", "1.6.1", "51cc11666391ab6f092070437ac747002ff46f3e4113a3622177ee6b488bfc53"
    ),
    build_file=_service_build(
        "build", ["pyproject-build", "--version"], whole_directory=True, namespace=WORKSPACE_ROOT
    ),
)
WORKSPACE_SERVICES = (WORKSPACE_PYPISERVER, WORKSPACE_BUILD_CLI)
# The shared library member: both services depend on packaging, built from this directory.
PACKAGING = Sdist(
    "packaging", "26.3", "94edc256424af38762eb31306eed28beb9f0efc50a8837492c9d6fd6004aed79"
)
WORKSPACE_LIBRARY = f"{WORKSPACE_ROOT}/libs/packaging"


def add_real_services(checkout: Checkout, sdists: Path) -> None:
    """Lays out every real service in `checkout`."""
    for service in REAL_SERVICES:
        service.lay_out(checkout, sdists)


def add_real_workspace(checkout: Checkout, sdists: Path) -> None:
    """Lays out the workspace of real projects in `checkout`."""
    root = checkout.root / WORKSPACE_ROOT
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(WORKSPACE_PYPROJECT)
    (root / "BUILD").write_text(WORKSPACE_BUILD)
    for service in WORKSPACE_SERVICES:
        service.lay_out(checkout, sdists)
    library = checkout.root / WORKSPACE_LIBRARY
    _unpack_sdist(PACKAGING.fetch(sdists), library)
    (library / "BUILD").write_text('files(name="packaging", sources=["**/*"])\n')


# Every real image target, and the directories whose locks `pants esb-lock` writes.
REAL_TARGETS = tuple(s.target for s in (*REAL_SERVICES, *WORKSPACE_SERVICES))
LOCKED_DIRECTORIES = (*(s.path for s in REAL_SERVICES), WORKSPACE_ROOT)


def copy_locks(source: Checkout, destination: Checkout) -> None:
    """The locks `pants esb-lock` wrote in `source`, as committed, into `destination`."""
    for directory in LOCKED_DIRECTORIES:
        for name in ("uv.lock", "build-constraints.txt"):
            if (source.root / directory / name).is_file():
                shutil.copy2(source.root / directory / name, destination.root / directory / name)


def lock_as_of_exclude_newer(checkout: Checkout, *targets: str) -> PantsRun:
    """`pants esb-lock` of `targets`, resolving as of `EXCLUDE_NEWER`: their locks record the
    time, and are the same on every day."""
    run = checkout.pants(f"--esb-uv-exclude-newer={EXCLUDE_NEWER}", "esb-lock", *targets)
    assert run.returncode == 0, run.report()
    return run


def probe_pypiserver(
    docker_client: DockerClient, image: str, script: str, *args: str
) -> tuple[str, str, str]:
    """Starts a pypiserver image as its command does; returns the answer to `GET /simple/`
    (status line and body), the output of the Python `script` run with `args` in the container,
    and the user the service runs as."""
    with running_container(docker_client, image) as container:
        answer = exec_python(container, http_get_script("http://127.0.0.1:8080/simple/"))
        output = exec_python(container, script, *args)
        user = exec_python(container, "import getpass; print(getpass.getuser())").strip()
    return answer, output, user


def _unpack_sdist(sdist: Path, destination: Path) -> None:
    """The sdist's files under `destination`, without its single top-level directory."""
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
        top = {m.name.split("/", 1)[0] for m in members}
        if len(top) != 1:
            raise AssertionError(f"{sdist.name} has no single top-level directory: {sorted(top)}")
        for member in members:
            relative = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not relative:
                continue
            target = destination / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = archive.extractfile(member)
            assert extracted is not None
            target.write_bytes(extracted.read())
            target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _get(url: str) -> bytes:
    # urllib's default TLS context honours SSL_CERT_FILE (an intercepting proxy's CA).
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return response.read()


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sdist_cache() -> Path:
    """Where downloaded sdists are kept between tests of a session (checked on every use)."""
    return Path(os.environ.get("HOME", "/tmp")) / ".cache" / "esb-images" / "test-sdists"
