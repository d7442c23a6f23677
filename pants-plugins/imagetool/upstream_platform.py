"""An upstream base image's platform facts, read from its config and files without running it:
what builds on the image need to know, the facts a Debian base's lock records.

- architecture: the image config's;
- Python: the official `python` images install CPython as `/usr/local/bin/python3.X`, and set
  `PYTHON_VERSION` (else `/usr/local/include/python3.X/patchlevel.h` tells it); a Debian image
  with Debian's Python has `/usr/bin/python3.X`, whose version is the upstream part of the
  `python3.X` package's version in the dpkg status. `/usr/local` wins, as it does on `PATH`.
- glibc: the upstream part of the `libc6` package's version in the dpkg status (`2.36-9+deb12u4`
  is glibc 2.36), which decides the manylinux wheels the image can run.

`bytecode_note` says when service venvs on the image ship without bytecode, because its Python
is not of the image tool's own minor version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from debian import deb822
from debian.debian_support import Version

from esb_contract.messages import NOTE_PREFIX
from esb_contract.platform_facts import PlatformFacts
from imagetool.errors import ToolError
from imagetool.image_files import ImageFile, config_env, read_image_files
from imagetool.oci import LoadedImage
from imagetool.venv.bytecode import bytecode_incompatibility
from imagetool.venv.target_python import TargetPython

DPKG_STATUS = "var/lib/dpkg/status"
# Distroless images record each package in a file of its own here instead.
DPKG_STATUS_DIRECTORY = "var/lib/dpkg/status.d/"
_LOCAL_PYTHON = re.compile(r"usr/local/bin/python(3\.\d+)")
_SYSTEM_PYTHON = re.compile(r"usr/bin/python(3\.\d+)")
_PATCHLEVEL = re.compile(r"usr/local/include/python(3\.\d+)/patchlevel\.h")
_PY_VERSION_DEFINE = re.compile(rb'#define\s+PY_VERSION\s+"([^"]+)"')
_FULL_VERSION = re.compile(r"\d+\.\d+\.\d+")


class UpstreamImageError(ToolError, ValueError):
    """An upstream image lacks what a base needs; the message names the image and the fix."""


def platform_facts(name: str, config: Mapping, files: Mapping[str, ImageFile]) -> PlatformFacts:
    """The facts of the image `name` (for messages), from its config and `platform_files`."""
    packages = dpkg_versions(files)
    interpreter, python_version = _python(name, config, files, packages)
    if "libc6" not in packages:
        raise UpstreamImageError(
            f"The image {name} records no `libc6` package in its dpkg status "
            f"(/{DPKG_STATUS}), so its glibc version, which decides the manylinux wheels it can "
            "run, is unknown.\n\nFix: build on a Debian-based image with glibc (e.g. "
            "`python:3.12-slim-bookworm@sha256:…` or `debian:bookworm-slim@sha256:…`); musl "
            "images such as Alpine cannot run manylinux wheels."
        )
    glibc = re.match(r"\d+\.\d+", Version(packages["libc6"]).upstream_version or "")
    if glibc is None:
        raise UpstreamImageError(
            f"The image {name} has libc6 {packages['libc6']}, whose version is not glibc's X.Y."
        )
    return PlatformFacts(
        architecture=str(config.get("architecture", "")),
        python_version=python_version,
        glibc_version=glibc.group(0),
        interpreter=interpreter,
    )


def platform_files(path: str) -> bool:
    """Whether `path` is one of the files `platform_facts` reads."""
    return bool(
        path == DPKG_STATUS
        or path.startswith(DPKG_STATUS_DIRECTORY)
        or path in ("usr/bin/python3", "usr/local/bin/python3")
        or _LOCAL_PYTHON.fullmatch(path)
        or _SYSTEM_PYTHON.fullmatch(path)
        or _PATCHLEVEL.fullmatch(path)
    )


def dpkg_versions(files: Mapping[str, ImageFile]) -> dict[str, str]:
    """Installed packages and their versions, from the dpkg status (and distroless' status.d)."""
    sources = [files[DPKG_STATUS]] if DPKG_STATUS in files else []
    sources += [files[path] for path in sorted(files) if path.startswith(DPKG_STATUS_DIRECTORY)]
    versions = {}
    for source in sources:
        text = (source.data or b"").decode("utf-8", "replace")
        for paragraph in deb822.Deb822.iter_paragraphs(text):
            status = paragraph.get("Status", "install ok installed")
            if "Package" in paragraph and "Version" in paragraph and status.endswith(" installed"):
                versions[paragraph["Package"]] = paragraph["Version"]
    return versions


def _python(
    name: str, config: Mapping, files: Mapping[str, ImageFile], packages: Mapping[str, str]
) -> tuple[str, str]:
    """The interpreter's path and its X.Y.Z version."""
    local = _minor_versions(files, _LOCAL_PYTHON)
    if local:
        minor = _chosen_minor(name, "/usr/local/bin", local, files.get("usr/local/bin/python3"))
        declared = config_env(config).get("PYTHON_VERSION", "")
        if _minor_of(declared) == minor:
            version = declared
        else:
            header = files.get(f"usr/local/include/python{minor}/patchlevel.h")
            found = _PY_VERSION_DEFINE.search(header.data or b"") if header else None
            version = found.group(1).decode() if found else ""
        where = f"/usr/local/bin/python{minor}"
        if not version:
            raise UpstreamImageError(
                f"The image {name} has {where}, but neither its `PYTHON_VERSION` variable nor "
                f"/usr/local/include/python{minor}/patchlevel.h says which CPython {minor} it is."
                "\n\nFix: set `PYTHON_VERSION` (X.Y.Z) in the image, as the official python "
                "images do."
            )
        return where, _checked_version(name, where, version)
    system = _minor_versions(files, _SYSTEM_PYTHON)
    if system:
        minor = _chosen_minor(name, "/usr/bin", system, files.get("usr/bin/python3"))
        where = f"/usr/bin/python{minor}"
        package = next(
            (
                p
                for p in (f"python{minor}-minimal", f"python{minor}", f"libpython{minor}-minimal")
                if p in packages
            ),
            None,
        )
        if package is None:
            raise UpstreamImageError(
                f"The image {name} has {where}, but its dpkg status records no python{minor} "
                "package, so its version is unknown.\n\nFix: install Python from Debian's "
                f"packages (python{minor}) in the image, or use an official python image."
            )
        version = Version(packages[package]).upstream_version or ""
        return where, _checked_version(name, where, version)
    raise UpstreamImageError(
        f"The image {name} has no Python: neither /usr/local/bin/python3.X (the official python "
        "images) nor /usr/bin/python3.X (Debian's python3 package). Services need a CPython "
        "in their base, which their venv's `bin/python` links to.\n\nFix: build on an image "
        'with CPython, e.g. `upstream="python:3.12-slim-bookworm@sha256:…"`, or assemble the '
        'base from Debian packages with `packages=["python3", ...]` instead of `upstream`.'
    )


def _minor_versions(files: Mapping[str, ImageFile], pattern: re.Pattern[str]) -> list[str]:
    found = {
        match.group(1)
        for path, file in files.items()
        if (match := pattern.fullmatch(path))
        and (file.info.isreg() or file.info.issym() or file.info.islnk())
    }
    return sorted(found, key=lambda minor: tuple(int(part) for part in minor.split(".")))


def _chosen_minor(
    name: str, directory: str, minors: Sequence[str], python3: ImageFile | None
) -> str:
    """Of several `python3.X`, the one `python3` links to; a single one is the one."""
    if python3 is not None and python3.info.issym():
        target = python3.info.linkname.rsplit("/", 1)[-1]
        if target.startswith("python") and target[len("python") :] in minors:
            return target[len("python") :]
    if len(minors) == 1:
        return minors[0]
    raise UpstreamImageError(
        f"The image {name} has several Pythons in {directory} "
        f"({', '.join(f'python{m}' for m in minors)}) and no `python3` link that picks one."
        f"\n\nFix: build on an image with a single CPython, or one whose {directory}/python3 "
        "links to the one services use."
    )


def _minor_of(version: str) -> str | None:
    match = re.match(r"(\d+\.\d+)\.", version)
    return match.group(1) if match else None


def _checked_version(name: str, interpreter: str, version: str) -> str:
    if not _FULL_VERSION.fullmatch(version):
        raise UpstreamImageError(
            f"The image {name} has {interpreter} of version {version!r}, not a final release "
            "X.Y.Z; service venvs are installed for final releases only.\n\nFix: build on an "
            "image with a final CPython release."
        )
    return version


def read_platform_facts(image: LoadedImage, name: str) -> PlatformFacts:
    return platform_facts(name, image.config, read_image_files(image, platform_files))


def bytecode_note(name: str, facts: PlatformFacts) -> str | None:
    """A note line when venvs for this image cannot get bytecode from this interpreter."""
    if facts.python_version is None or facts.interpreter is None:
        raise UpstreamImageError(
            f"The platform facts of the image {name} lack its Python version or interpreter, so "
            "whether its venvs can ship bytecode is unknown.\n\nFix: read them with "
            "`read_platform_facts`, which finds both or refuses the image."
        )
    reason = bytecode_incompatibility(TargetPython(facts.python_version, "", facts.interpreter))
    if reason is None:
        return None
    return (
        f"{NOTE_PREFIX}service venvs on {name} ship without bytecode: {reason}. Every process "
        "start compiles the services' dependencies in memory (see docs/upstream-bases.md)."
    )
