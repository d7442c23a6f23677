"""What the maintainer scripts of a minimal base's packages would do, done deterministically.

Maintainer scripts cannot run here (no root, no chroot, and they are not reproducible), so each
effect that a container needs is reproduced from the scripts' own logic, for a fresh,
non-interactive install with debconf's defaults. A step runs only when its package is installed.
Left out on purpose: debconf's database, and the man-page alternatives of excluded man pages.
`/etc/hostname` and `/etc/resolv.conf` come from no package (installers write them, container
runtimes mount them). Bytecode is `bytecode.py`'s, on request.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from imagetool.debian import cacerts
from imagetool.debian.deb import DebPackage
from imagetool.debian.ldcache import ld_so_cache
from imagetool.debian.tree import Accounts, Tree, TreeError, directory, regular_file, symlink
from imagetool.tarlayer import LayerMember

_PYTHON_MINIMAL = re.compile(r"(python3\.\d+)-minimal")
_ALTERNATIVE = re.compile(
    r"update-alternatives\s+--install\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)"
    r"((?:\s+--slave\s+\S+\s+\S+\s+\S+)*)"
)
_SLAVE = re.compile(r"--slave\s+(\S+)\s+(\S+)\s+(\S+)")


def configure(tree: Tree, packages: Mapping[str, DebPackage], accounts: Accounts) -> None:
    for name, step in _PACKAGE_STEPS.items():
        if name in packages:
            step(tree, accounts)
    for name in sorted(packages):
        if match := _PYTHON_MINIMAL.fullmatch(name):
            _python_local_site(tree, match.group(1))
    _alternatives(tree, packages)


def _base_passwd(tree: Tree, accounts: Accounts) -> None:
    """base-passwd's postinst copies its master files; `pwconv` and `grpconv` (run by every
    Debian installer) then move the passwords, all locked (`*`), to the shadow files."""
    owner = "base-passwd's postinst"
    users, groups = _rows(accounts.passwd), _rows(accounts.group)
    tree.add(_table("etc/passwd", [[user[0], "x", *user[2:]] for user in users]), owner=owner)
    tree.add(_table("etc/group", [[group[0], "x", *group[2:]] for group in groups]), owner=owner)
    shadow = accounts.gid("shadow")
    # The date of the last change stays empty: that disables password ageing, and keeps the
    # file independent of the build date.
    shadowed_users = [[user[0], user[1], "", "0", "99999", "7", "", "", ""] for user in users]
    tree.add(_table("etc/shadow", shadowed_users, shadow_gid=shadow), owner=owner)
    shadowed_groups = [[group[0], group[1], "", group[3]] for group in groups]
    tree.add(_table("etc/gshadow", shadowed_groups, shadow_gid=shadow), owner=owner)


def _rows(table: bytes) -> list[list[str]]:
    return [line.split(":") for line in table.decode().splitlines() if line]


def _table(path: str, rows: list[list[str]], *, shadow_gid: int | None = None) -> LayerMember:
    content = "".join(":".join(row) + "\n" for row in rows).encode()
    if shadow_gid is None:
        return regular_file(path, content)
    return regular_file(path, content, mode=0o640, gid=shadow_gid, group="shadow")


def _base_files(tree: Tree, accounts: Accounts) -> None:
    owner = "base-files' postinst"
    defaults = "usr/share/base-files"
    for source, target in (
        ("dot.profile", "root/.profile"),
        ("dot.bashrc", "root/.bashrc"),
        ("profile", "etc/profile"),
        ("motd", "etc/motd"),
    ):
        tree.add(regular_file(target, _required(tree, f"{defaults}/{source}", owner)), owner=owner)
    for path in ("mnt", "srv", "opt", "etc/opt", "var/opt", "media"):
        tree.add(directory(path), owner=owner)
    tree.add(
        directory("var/mail", mode=0o2775, gid=accounts.gid("mail"), group="mail"), owner=owner
    )
    tree.add(directory("run/lock", mode=0o1777), owner=owner)
    tree.add(symlink("var/spool/mail", "../mail"), owner=owner)
    # base-files ships /var/run and /var/lock as directories and turns them into links.
    tree.replace(symlink("var/run", "/run"), owner=owner)
    tree.replace(symlink("var/lock", "/run/lock"), owner=owner)
    for path in (
        "",
        "/share",
        "/share/man",
        "/bin",
        "/games",
        "/lib",
        "/include",
        "/sbin",
        "/src",
        "/etc",
    ):
        tree.add(directory(f"usr/local{path}"), owner=owner)
    tree.add(symlink("usr/local/man", "share/man"), owner=owner)
    utmp = accounts.gid("utmp")
    for path, mode in (
        ("var/log/wtmp", 0o664),
        ("var/log/btmp", 0o660),
        ("var/log/lastlog", 0o664),
    ):
        tree.add(regular_file(path, b"", mode=mode, gid=utmp, group="utmp"), owner=owner)
    if tree.get("usr/share/info") is not None:
        tree.add(
            regular_file("usr/share/info/dir", _required(tree, f"{defaults}/info.dir", owner)),
            owner=owner,
        )
    if tree.get("etc/dpkg/origins/debian") is not None:
        tree.add(symlink("etc/dpkg/origins/default", "debian"), owner=owner)


def _libc_bin(tree: Tree, accounts: Accounts) -> None:
    # Without /etc/nsswitch.conf, glibc resolves host names through DNS before /etc/hosts.
    owner = "libc-bin's postinst"
    nsswitch = _required(tree, "usr/share/libc-bin/nsswitch.conf", owner)
    tree.add(regular_file("etc/nsswitch.conf", nsswitch), owner=owner)
    tree.add(regular_file("etc/ld.so.cache", ld_so_cache(tree)), owner=owner)


def _dash(tree: Tree, accounts: Accounts) -> None:
    """dash's postinst diverts /bin/sh (and sh.1.gz where man pages are kept) to itself."""
    diversions = [("/bin/sh", "/bin/sh.distrib")]
    if tree.get("usr/share/man/man1/sh.1.gz") is not None:
        diversions.append(("/usr/share/man/man1/sh.1.gz", "/usr/share/man/man1/sh.distrib.1.gz"))
    record = "".join(f"{path}\n{diverted}\ndash\n" for path, diverted in diversions)
    tree.add(regular_file("var/lib/dpkg/diversions", record.encode()), owner="dash's postinst")


def _debianutils(tree: Tree, accounts: Accounts) -> None:
    """The postinst copies the template to /etc/shells, then `update-shells` adds each shell
    of /usr/share/debianutils/shells.d, and its /usr alias on a merged-/usr system."""
    owner = "debianutils' postinst"
    template = _required(tree, "usr/share/debianutils/shells", owner)
    listed = [template] + [
        _required(tree, path, owner) for path in tree.paths_under("usr/share/debianutils/shells.d")
    ]
    managed: list[str] = []
    for listing in listed:
        for line in listing.decode().splitlines():
            shell = line.split("#", 1)[0]
            if not shell:
                continue
            real = f"/{tree.real_path(shell)}"
            managed += [shell] if real == shell else [shell, real]
    etc_shells = template.decode().splitlines()
    etc_shells += [shell for shell in dict.fromkeys(managed) if shell not in etc_shells]
    tree.add(
        regular_file("etc/shells", "".join(f"{line}\n" for line in etc_shells).encode()),
        owner=owner,
    )
    state = "".join(f"{shell}\n" for shell in managed)
    tree.add(regular_file("var/lib/shells.state", state.encode()), owner=owner)


def _netbase(tree: Tree, accounts: Accounts) -> None:
    owner = "netbase's postinst"
    hosts = (
        "127.0.0.1\tlocalhost\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\n"
        "ff02::2\t\tip6-allrouters\n\n"
    )
    networks = "default\t\t0.0.0.0\nloopback\t127.0.0.0\nlink-local\t169.254.0.0\n\n"
    tree.add(regular_file("etc/hosts", hosts.encode()), owner=owner)
    tree.add(regular_file("etc/networks", networks.encode()), owner=owner)


def _readline_common(tree: Tree, accounts: Accounts) -> None:
    owner = "readline-common's postinst"
    tree.add(
        regular_file("etc/inputrc", _required(tree, "usr/share/readline/inputrc", owner)),
        owner=owner,
    )


def _tzdata(tree: Tree, accounts: Accounts) -> None:
    owner = "tzdata's postinst"
    tree.add(symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"), owner=owner)
    tree.add(regular_file("etc/timezone", b"Etc/UTC\n"), owner=owner)


def _python3(tree: Tree, accounts: Accounts) -> None:
    config = (
        b"[DEFAULT]\n# how to byte-compile (comma separated: standard, optimize)\n"
        b"byte-compile = standard\n"
    )
    tree.add(regular_file("etc/python3/debian_config", config), owner="python3's postinst")


def _python_local_site(tree: Tree, interpreter: str) -> None:
    owner = f"{interpreter}-minimal's postinst"
    tree.add(directory(f"usr/local/lib/{interpreter}"), owner=owner)
    tree.add(directory(f"usr/local/lib/{interpreter}/dist-packages"), owner=owner)


def _ca_certificates(tree: Tree, accounts: Accounts) -> None:
    owner = "ca-certificates' postinst"
    tree.add(directory("usr/local/share/ca-certificates"), owner=owner)
    prefix = cacerts.CERTS_DIR + "/"
    certificates = {
        path.removeprefix(prefix): data
        for path in tree.paths_under(cacerts.CERTS_DIR)
        if path.endswith(".crt") and (data := tree.file_data(path)) is not None
    }
    store = cacerts.trust_store(certificates)
    tree.add(regular_file("etc/ca-certificates.conf", store.conf), owner=owner)
    tree.add(regular_file("etc/ssl/certs/ca-certificates.crt", store.bundle), owner=owner)
    for name, target in store.pem_links + store.hash_links:
        tree.add(symlink(f"etc/ssl/certs/{name}", target), owner=owner)


def _alternatives(tree: Tree, packages: Mapping[str, DebPackage]) -> None:
    """The links `update-alternatives --install` makes, in automatic mode, and its records.

    The calls are read from the postinst scripts, where debhelper writes them literally.
    """
    choices: dict[str, list[tuple[int, str, str, list[tuple[str, str, str]]]]] = {}
    for name in sorted(packages):
        script = packages[name].control_text("postinst").replace("\\\n", " ")
        for link, alternative, path, priority, slaves in _ALTERNATIVE.findall(script):
            choices.setdefault(alternative, []).append(
                (int(priority), path, link, _SLAVE.findall(slaves))
            )
    owner = "update-alternatives"
    for alternative, candidates in sorted(choices.items()):
        # Automatic mode picks the highest priority; the path breaks ties deterministically.
        priority, path, link, slaves = max(candidates, key=lambda choice: (choice[0], choice[1]))
        # An alternative or a slave whose file is not installed gets no link (like
        # update-alternatives): this drops the man-page alternatives when man pages are excluded.
        if not _is_installed(tree, path):
            continue
        _add_alternative_link(tree, link, alternative, path, owner)
        for slave_link, slave_name, slave_path in slaves:
            if _is_installed(tree, slave_path):
                _add_alternative_link(tree, slave_link, slave_name, slave_path, owner)
        tree.add(
            regular_file(
                f"var/lib/dpkg/alternatives/{alternative}",
                _alternative_record(link, candidates).encode(),
            ),
            owner=owner,
        )


def _is_installed(tree: Tree, path: str) -> bool:
    return tree.get(tree.real_path(path)) is not None


def _add_alternative_link(tree: Tree, link: str, name: str, path: str, owner: str) -> None:
    tree.add(symlink(tree.real_path(link), f"/etc/alternatives/{name}"), owner=owner)
    tree.add(symlink(f"etc/alternatives/{name}", path), owner=owner)


def _alternative_record(link: str, candidates: list) -> str:
    """The file in /var/lib/dpkg/alternatives that `update-alternatives` writes."""
    slave_names: dict[str, str] = {}
    for _, _, _, slaves in sorted(candidates, key=lambda choice: choice[1]):
        for slave_link, slave_name, _ in slaves:
            slave_names.setdefault(slave_name, slave_link)
    lines = ["auto", link]
    for slave_name, slave_link in slave_names.items():
        lines += [slave_name, slave_link]
    lines.append("")
    for priority, path, _, slaves in sorted(candidates, key=lambda choice: choice[1]):
        slave_paths = {slave_name: slave_path for _, slave_name, slave_path in slaves}
        lines += [path, str(priority)]
        lines += [slave_paths.get(slave_name, "") for slave_name in slave_names]
    lines.append("")
    return "\n".join(lines) + "\n"


def _required(tree: Tree, path: str, step: str) -> bytes:
    data = tree.file_data(path)
    if data is None:
        raise TreeError(f"/{path} is not installed, but {step} needs it.")
    return data


_PACKAGE_STEPS: dict[str, Callable[[Tree, Accounts], None]] = {
    "base-files": _base_files,
    "base-passwd": _base_passwd,
    "ca-certificates": _ca_certificates,
    "dash": _dash,
    "debianutils": _debianutils,
    "libc-bin": _libc_bin,
    "netbase": _netbase,
    "python3": _python3,
    "readline-common": _readline_common,
    "tzdata": _tzdata,
}
