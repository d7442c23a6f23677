"""An upstream base image (pulled by digest) read without running it: its platform facts, and
the layer that adds service accounts to it.

`image-platform` writes what builds on the image need to know, the facts a Debian base's lock
records: the architecture (from the image config), the Python version and interpreter path, and
the glibc version. Where they come from:

- Python: the official `python` images install CPython as `/usr/local/bin/python3.X`, and set
  `PYTHON_VERSION` (else `/usr/local/include/python3.X/patchlevel.h` tells it); a Debian image
  with Debian's Python has `/usr/bin/python3.X`, whose version is the upstream part of the
  `python3.X` package's version in the dpkg status. `/usr/local` wins, as it does on `PATH`.
- glibc: the upstream part of the `libc6` package's version in the dpkg status (`2.36-9+deb12u4`
  is glibc 2.36), which decides the manylinux wheels the image can run.

`layer-inventories` lists each layer's package records for the image's inventory, as our own
layer commands record them for the layers they write.

`accounts-layer` writes a layer with the image's `/etc/passwd`, `group`, `shadow` and `gshadow`
(whichever it has, keeping their ownership and mode) plus the service accounts, each with a
group of its own, no password and no login: the accounts that a Debian base of ours defines in
its root filesystem.
"""

from __future__ import annotations

import argparse
import copy
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from debian import deb822
from debian.debian_support import Version

from esb_contract.messages import NOTE_PREFIX
from esb_contract.platform_facts import PlatformFacts
from imagetool.accounts import account_ids
from imagetool.commands import (
    AddArguments,
    LayerOutputs,
    Run,
    add_layer_output_arguments,
    write_json,
)
from imagetool.debian.tree import ServiceAccount
from imagetool.errors import ToolError
from imagetool.image_files import (
    ImageFile,
    config_env,
    layer_members,
    load_single_image,
    read_image_files,
)
from imagetool.inventory import ACCOUNT_FILES, layer_inventory
from imagetool.oci import LoadedImage
from imagetool.tarlayer import LayerMember
from imagetool.venv.bytecode import bytecode_incompatibility
from imagetool.venv.target_python import TargetPython

DPKG_STATUS = "var/lib/dpkg/status"
LAYER_INVENTORY = "layer.inventory.json"
# Distroless images record each package in a file of its own here instead.
DPKG_STATUS_DIRECTORY = "var/lib/dpkg/status.d/"
_LOCAL_PYTHON = re.compile(r"usr/local/bin/python(3\.\d+)")
_SYSTEM_PYTHON = re.compile(r"usr/bin/python(3\.\d+)")
_PATCHLEVEL = re.compile(r"usr/local/include/python(3\.\d+)/patchlevel\.h")
_PY_VERSION_DEFINE = re.compile(rb'#define\s+PY_VERSION\s+"([^"]+)"')
_FULL_VERSION = re.compile(r"\d+\.\d+\.\d+")
_ACCOUNT_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")


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
        for paragraph in deb822.Deb822.iter_paragraphs((source.data or b"").decode("utf-8", "replace")):
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
            (p for p in (f"python{minor}-minimal", f"python{minor}", f"libpython{minor}-minimal") if p in packages),
            None,
        )
        if package is None:
            raise UpstreamImageError(
                f"The image {name} has {where}, but its dpkg status records no python{minor} "
                "package, so its version is unknown.\n\nFix: install Python from Debian's "
                f"packages (python{minor}) in the image, or use an official python image."
            )
        return where, _checked_version(name, where, Version(packages[package]).upstream_version or "")
    raise UpstreamImageError(
        f"The image {name} has no Python: neither /usr/local/bin/python3.X (the official python "
        "images) nor /usr/bin/python3.X (Debian's python3 package). Services need a CPython "
        "in their base, which their venv's `bin/python` links to.\n\nFix: build on an image "
        "with CPython, e.g. `upstream=\"python:3.12-slim-bookworm@sha256:…\"`, or assemble the "
        "base from Debian packages with `packages=[\"python3\", ...]` instead of `upstream`."
    )


def _minor_versions(files: Mapping[str, ImageFile], pattern: re.Pattern[str]) -> list[str]:
    found = {
        match.group(1)
        for path, file in files.items()
        if (match := pattern.fullmatch(path)) and (file.info.isreg() or file.info.issym() or file.info.islnk())
    }
    return sorted(found, key=lambda minor: tuple(int(part) for part in minor.split(".")))


def _chosen_minor(name: str, directory: str, minors: Sequence[str], python3: ImageFile | None) -> str:
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


# Service accounts


def accounts_members(
    name: str, files: Mapping[str, ImageFile], accounts: Sequence[ServiceAccount]
) -> list[LayerMember]:
    """The image's account files with `accounts` added; an account the image already defines
    with the same id (user and group) is kept as it is."""
    passwd, group = files.get("etc/passwd"), files.get("etc/group")
    if passwd is None or group is None or passwd.data is None or group.data is None:
        raise UpstreamImageError(
            f"The image {name} has no /etc/passwd and /etc/group to add the service accounts "
            f"{', '.join(f'{a.name}:{a.uid}' for a in accounts)} to.\n\nFix: set "
            "`service_accounts=[]` on the base, and run services as a numeric `user`."
        )
    users, groups = (account_ids(f.data.decode("utf-8", "replace")) for f in (passwd, group))
    shadowed = "etc/shadow" in files
    added: dict[str, list[str]] = {path: [] for path in _ACCOUNT_FILES}
    for account in accounts:
        if users.get(account.name) == account.uid and groups.get(account.name) == account.uid:
            continue
        clash = [
            f"the {kind} {existing!r} ({id_})"
            for kind, table in (("user", users), ("group", groups))
            for existing, id_ in table.items()
            if existing == account.name or id_ == account.uid
        ]
        if clash:
            raise UpstreamImageError(
                f"The service account {account.name}:{account.uid} clashes with "
                f"{', '.join(clash)} of the image {name}.\n\nFix: pick another name, and an id "
                "from 1000 to 59999, in the base's `service_accounts`."
            )
        password = "x" if shadowed else "*"
        added["etc/passwd"].append(
            f"{account.name}:{password}:{account.uid}:{account.uid}:{account.name} service:"
            "/nonexistent:/usr/sbin/nologin\n"
        )
        added["etc/group"].append(f"{account.name}:{'x' if 'etc/gshadow' in files else '*'}:{account.uid}:\n")
        # No password, no ageing (the date of the last change stays empty, as in our Debian base).
        added["etc/shadow"].append(f"{account.name}:*::0:99999:7:::\n")
        added["etc/gshadow"].append(f"{account.name}:*::\n")
    members = []
    for path in _ACCOUNT_FILES:
        file = files.get(path)
        if file is None or file.data is None or not added[path]:
            continue
        data = _with_final_newline(file.data) + "".join(added[path]).encode()
        info = copy.copy(file.info)
        info.name, info.type, info.linkname, info.size = path, tarfile.REGTYPE, "", len(data)
        members.append((info, data))
    return members


def account_files(path: str) -> bool:
    return path in _ACCOUNT_FILES


def _with_final_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"


# Commands


def _add_image_platform_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read an image's platform facts (architecture, Python version and interpreter, glibc "
        "version) from its config and layers, without running it."
    )
    parser.add_argument("--layout", type=Path, required=True, help="an OCI layout holding one image")
    parser.add_argument("--name", required=True, help="the image's name, for messages (e.g. its reference)")
    parser.add_argument("--out", type=Path, required=True, help="the facts (JSON) to write")


def _image_platform(args: argparse.Namespace) -> int:
    facts = read_platform_facts(load_single_image(args.layout), args.name)
    write_json(args.out, facts.to_json())
    print(
        f"{args.name}: {facts.architecture}, CPython {facts.python_version} at {facts.interpreter}, "
        f"glibc {facts.glibc_version}."
    )
    note = bytecode_note(args.name, facts)
    if note:
        print(note)
    return 0


def bytecode_note(name: str, facts: PlatformFacts) -> str | None:
    """A note line when venvs for this image cannot get bytecode from this interpreter."""
    reason = bytecode_incompatibility(TargetPython(facts.python_version, "", facts.interpreter))
    if reason is None:
        return None
    return (
        f"{NOTE_PREFIX}service venvs on {name} ship without bytecode: {reason}. Every process start "
        "compiles the services' dependencies in memory (see docs/upstream-bases.md)."
    )


def _add_accounts_layer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write a layer that adds service accounts (`name:uid`, each with its own group) to the "
        "account files of an image."
    )
    parser.add_argument("--layout", type=Path, required=True, help="an OCI layout holding one image")
    parser.add_argument("--name", required=True, help="the image's name, for messages (e.g. its reference)")
    parser.add_argument(
        "--account", action="append", required=True, help="a service account `name:uid` (repeatable)"
    )
    add_layer_output_arguments(parser)


def _accounts_layer(args: argparse.Namespace) -> int:
    outputs = LayerOutputs.from_args(args)
    accounts = [ServiceAccount.parse(account) for account in args.account]
    files = read_image_files(load_single_image(args.layout), account_files)
    outputs.write(accounts_members(args.name, files, accounts))
    return 0


def package_record_files(path: str) -> bool:
    """A superset of the files whose data `inventory.layer_inventory` reads."""
    return (
        path == DPKG_STATUS
        or path in ACCOUNT_FILES
        or (path.endswith("/METADATA") and ".dist-info/" in path)
    )


def write_layer_inventories(image: LoadedImage, out_dir: Path) -> list[Path]:
    """Each layer's package records, as a layer command writes them for its own layers, to
    `out_dir/<index, 3 digits>/layer.inventory.json`, bottom layer first."""
    written = []
    for index, layer in enumerate(image.layers):
        where = f"layer {index} ({layer.digest}) of {image.layout.root}"
        records = layer_inventory(layer_members(image.layout, layer, package_record_files, where))
        path = out_dir / f"{index:03d}" / LAYER_INVENTORY
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, records.to_json())
        written.append(path)
    return written


def _add_layer_inventories_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read the package records (dpkg status, dist-info) of each layer of an image, for "
        "`merge-inventory`, into OUT_DIR/<index>/layer.inventory.json (index: 000 is the bottom layer)."
    )
    parser.add_argument("--layout", type=Path, required=True, help="an OCI layout holding one image")
    parser.add_argument("--out-dir", type=Path, required=True, help="the directory to write them to")


def _layer_inventories(args: argparse.Namespace) -> int:
    write_layer_inventories(load_single_image(args.layout), args.out_dir)
    return 0


COMMANDS: dict[str, tuple[AddArguments, Run]] = {
    "image-platform": (_add_image_platform_arguments, _image_platform),
    "accounts-layer": (_add_accounts_layer_arguments, _accounts_layer),
    "layer-inventories": (_add_layer_inventories_arguments, _layer_inventories),
}
