"""A Debian root filesystem as layer members, read from .deb files without extracting them.

Nothing touches the disk and nothing needs root: members keep the packages' own ownership and
modes (setuid bits, `/var/local` root:staff 2775), mapped to ids through base-passwd's account
lists the way dpkg maps the names in a package to the ids of the system it installs on.

The tree is what dpkg would unpack on a merged-/usr system (Debian 12 installers create `/bin`,
`/sbin`, `/lib*` as links into `/usr` before unpacking, while the packages still ship files under
`/bin`), plus what `configure.py` does in place of the maintainer scripts, plus the dpkg database
that vulnerability scanners read (`/var/lib/dpkg/status`, `info/<package>.list` and `.md5sums`).
"""

from __future__ import annotations

import hashlib
import tarfile
from typing import Iterator, Mapping, Sequence

from debian import deb822

from imagetool.debian import configure
from imagetool.debian.bytecode import bytecode_members
from imagetool.debian.deb import DebError, DebPackage, package_path
from imagetool.debian.tree import Accounts, ServiceAccount, Tree, directory, regular_file, symlink
from imagetool.tarlayer import LayerMember

# Paths that a container never reads, dropped unless asked for. A package's copyright file
# always stays: it is the licence notice that distributing the image requires.
DOCUMENTATION_PATHS = ("usr/share/doc", "usr/share/info", "usr/share/lintian", "usr/share/man")
TRANSLATION_PATHS = ("usr/share/locale",)
# Top-level directories that live in /usr on a merged-/usr system; `lib*` covers lib64 etc.
_ALWAYS_MERGED = ("bin", "lib", "sbin")
# dpkg's own order of the fields of a status entry; fields it does not know follow, as given.
_STATUS_FIELD_ORDER = (
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
)


def rootfs_members(
    packages: list[DebPackage],
    *,
    keep_documentation: bool = False,
    keep_translations: bool = False,
    bytecode_for_python: str | None = None,
    service_accounts: Sequence[ServiceAccount] = (),
) -> list[LayerMember]:
    """The root filesystem of the installed packages, configured, in path order.

    With `bytecode_for_python` (the base's Python version), the Python modules get bytecode.
    `service_accounts` are added to base-passwd's accounts, for services that run as non-root.
    """
    excluded = (() if keep_documentation else DOCUMENTATION_PATHS) + (
        () if keep_translations else TRANSLATION_PATHS
    )
    accounts = _accounts(packages).with_service_accounts(service_accounts)
    merged = _merged_directories(packages)
    tree = Tree()
    for name in merged:
        tree.add(symlink(name, f"usr/{name}"), owner="the merged-/usr layout")
    installed_paths: dict[str, list[str]] = {}
    for package in packages:
        installed_paths[package.locked.name] = []
        for info, data in package.members:
            shipped = package_path(info.name)
            if _is_excluded(shipped, excluded):
                continue
            installed_paths[package.locked.name].append(shipped)
            if shipped in merged:
                continue
            path = _merged_path(shipped, merged)
            member = _installed_member(info, data, path, merged, accounts)
            tree.add(member, owner=package.locked.name)
    configure.configure(tree, {package.locked.name: package for package in packages}, accounts)
    if bytecode_for_python is not None:
        for member in list(bytecode_members(tree, bytecode_for_python)):
            tree.add(member, owner="py3compile")
    for member in _dpkg_database(packages, installed_paths, tree):
        tree.add(member, owner="the dpkg database")
    return tree.members()


def _is_excluded(path: str, excluded: tuple[str, ...]) -> bool:
    parts = path.split("/")
    if parts[:3] == ["usr", "share", "doc"] and (len(parts) <= 4 or parts[4:] == ["copyright"]):
        return False
    return any(path == prefix or path.startswith(prefix + "/") for prefix in excluded)


def _merged_directories(packages: list[DebPackage]) -> tuple[str, ...]:
    shipped_top_level = {
        package_path(info.name).split("/", 1)[0]
        for package in packages
        for info, _ in package.members
    }
    libraries = {name for name in shipped_top_level if name.startswith("lib")}
    return tuple(sorted(set(_ALWAYS_MERGED) | libraries))


def _merged_path(path: str, merged: tuple[str, ...]) -> str:
    return f"usr/{path}" if path.split("/", 1)[0] in merged else path


def _installed_member(
    info: tarfile.TarInfo,
    data: bytes | None,
    path: str,
    merged: tuple[str, ...],
    accounts: Accounts,
) -> LayerMember:
    installed = tarfile.TarInfo(path)
    installed.type = info.type
    installed.mode = info.mode
    installed.size = info.size if data is not None else 0
    installed.linkname = (
        _merged_path(package_path(info.linkname), merged) if info.islnk() else info.linkname
    )
    installed.devmajor, installed.devminor = info.devmajor, info.devminor
    installed.uname, installed.gname = info.uname, info.gname
    installed.uid = accounts.uids.get(info.uname, info.uid)
    installed.gid = accounts.gids.get(info.gname, info.gid)
    installed.pax_headers = dict(info.pax_headers)
    return installed, data


def _accounts(packages: list[DebPackage]) -> Accounts:
    """The accounts that base-passwd defines, or none when the closure lacks it."""
    base_passwd = next((p for p in packages if p.locked.name == "base-passwd"), None)
    if base_passwd is None:
        return Accounts(passwd=b"", group=b"")
    files = {package_path(info.name): data for info, data in base_passwd.members}
    return Accounts(
        passwd=_master_file(base_passwd, files, "passwd"),
        group=_master_file(base_passwd, files, "group"),
    )


def _master_file(base_passwd: DebPackage, files: Mapping[str, bytes | None], name: str) -> bytes:
    path = f"usr/share/base-passwd/{name}.master"
    data = files.get(path)
    if data is None:
        raise DebError(
            f"The package {base_passwd.locked} has no regular file /{path}, which lists the "
            f"{name} entries a Debian base starts from. Lock another version of base-passwd."
        )
    return data


def _dpkg_database(
    packages: list[DebPackage], installed_paths: Mapping[str, list[str]], tree: Tree
) -> Iterator[LayerMember]:
    """`status` and `info/` as dpkg leaves them after installing the packages."""
    for name in ("alternatives", "info", "parts", "updates"):
        yield directory(f"var/lib/dpkg/{name}")
    # Format 1 files Multi-Arch: same packages as `info/<name>:<arch>.*`; without this file
    # dpkg reads the database as format 0 and finds none of their files.
    yield regular_file("var/lib/dpkg/info/format", b"1\n")
    if tree.get("var/lib/dpkg/diversions") is None:
        yield regular_file("var/lib/dpkg/diversions", b"")
    yield from _trigger_interests(packages)
    status = []
    for package in sorted(packages, key=lambda package: package.locked.name):
        paths = installed_paths[package.locked.name]
        status.append(_status_entry(package, tree))
        prefix = f"var/lib/dpkg/info/{package.dpkg_name}"
        listed = ["/."] + [f"/{path}" for path in paths]
        yield regular_file(f"{prefix}.list", "".join(f"{path}\n" for path in listed).encode())
        for control_name, (info, data) in sorted(package.control_files.items()):
            if control_name == "control":
                continue
            if control_name == "md5sums":
                data = _present_md5sums(data, set(paths))
            yield regular_file(f"{prefix}.{control_name}", data, mode=info.mode)
    yield regular_file("var/lib/dpkg/status", "\n".join(status).encode())


def _trigger_interests(packages: list[DebPackage]) -> Iterator[LayerMember]:
    """`triggers/`: who awaits which trigger, from the packages' `triggers` control files."""
    file_interests: list[str] = []
    named_interests: dict[str, list[str]] = {}
    for package in sorted(packages, key=lambda package: package.locked.name):
        for line in package.control_text("triggers").splitlines():
            directive, _, trigger = line.split("#", 1)[0].strip().partition(" ")
            if directive not in ("interest", "interest-await", "interest-noawait"):
                continue
            interested = package.dpkg_name + ("/noawait" if directive == "interest-noawait" else "")
            trigger = trigger.strip()
            if trigger.startswith("/"):
                file_interests.append(f"{trigger} {interested}\n")
            else:
                named_interests.setdefault(trigger, []).append(f"{interested}\n")
    yield directory("var/lib/dpkg/triggers")
    yield regular_file("var/lib/dpkg/triggers/File", "".join(file_interests).encode())
    yield regular_file("var/lib/dpkg/triggers/Lock", b"", mode=0o600)
    yield regular_file("var/lib/dpkg/triggers/Unincorp", b"")
    for trigger, awaiting in sorted(named_interests.items()):
        yield regular_file(f"var/lib/dpkg/triggers/{trigger}", "".join(awaiting).encode())


def _present_md5sums(md5sums: bytes, present: set[str]) -> bytes:
    """The md5sums lines of the files that the tree holds (excluded docs are not installed)."""
    return b"".join(
        line
        for line in md5sums.splitlines(keepends=True)
        if line.split(b"  ", 1)[-1].strip().decode() in present
    )


def _status_entry(package: DebPackage, tree: Tree) -> str:
    fields = dict(package.control)
    fields["Status"] = "install ok installed"
    if "conffiles" in package.control_files:
        fields["Conffiles"] = _conffiles_field(package, tree)
    ordered = [name for name in _STATUS_FIELD_ORDER if name in fields]
    ordered += [name for name in fields if name not in _STATUS_FIELD_ORDER]
    paragraph = deb822.Deb822()
    for name in ordered:
        paragraph[name] = fields[name]
    return paragraph.dump()


def _conffiles_field(package: DebPackage, tree: Tree) -> str:
    lines = [""]
    for conffile in package.control_files["conffiles"][1].decode().splitlines():
        path = conffile.strip()
        if not path or path.startswith("remove-on-upgrade "):
            continue
        data = tree.file_data(tree.real_path(path))
        if data is None:
            continue
        lines.append(f" {path} {hashlib.md5(data).hexdigest()}")
    return "\n".join(lines)
