from __future__ import annotations

import hashlib
import json

import pytest
from debian import deb822

from esb_contract.base_lock import (
    FORMAT_VERSION,
    LockedPackage,
    LockFormatError,
    PackageLock,
    PackageLocks,
)
from esb_contract.platform_facts import PlatformFacts
from imagetool.debian.archive import Source, SuiteIndex
from imagetool.debian.lock import (
    ResolutionError,
    UnclosedLockError,
    check_closed,
    lock_packages,
    read_lock,
)

MAIN = Source("https://deb.example.org/debian", "bookworm", ("main",))
SECURITY = Source("https://deb.example.org/debian-security", "bookworm-security", ("main",))


def suite(source: Source, *paragraphs: str) -> SuiteIndex:
    text = "\n".join(_paragraph(p) for p in paragraphs)
    return SuiteIndex(
        source=source,
        release_date="Sat, 10 Jun 2023 08:55:33 UTC",
        index_sha256={"main/binary-amd64/Packages.xz": "ab" * 32},
        paragraphs=tuple(deb822.Packages.iter_paragraphs(text, use_apt_pkg=False)),
    )


def _paragraph(spec: str) -> str:
    """`name version [Field: value]...` separated by `;`, filled out like a Packages index."""
    head, *fields = [part.strip() for part in spec.split(";")]
    name, version = head.split()
    architecture = next((f.split(": ")[1] for f in fields if f.startswith("Architecture")), "amd64")
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        *(f for f in fields if not f.startswith("Architecture")),
        f"Architecture: {architecture}",
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version.split(':')[-1]}_{architecture}.deb",
        "Size: 1000",
        f"SHA256: {hashlib.sha256(spec.encode()).hexdigest()}",
    ]
    return "\n".join(lines) + "\n"


def names(lock: PackageLock) -> list[str]:
    return [package.name for package in lock.packages]


def test_follows_depends_and_pre_depends_only() -> None:
    index = suite(
        MAIN,
        "app 1.0; Depends: libfoo; Pre-Depends: libbar; Recommends: extra; Suggests: more",
        "libfoo 1.0",
        "libbar 1.0",
        "extra 1.0",
        "more 1.0",
        "essential-thing 1.0; Essential: yes",
    )
    assert names(lock_packages([index], "amd64", ["app"])) == ["app", "libbar", "libfoo"]


def test_takes_the_highest_version_across_sources() -> None:
    main = suite(MAIN, "app 1.0; Depends: libssl (>= 3.0.2)", "libssl 3.0.1")
    security = suite(SECURITY, "libssl 3.0.11")
    lock = lock_packages([main, security], "amd64", ["app"])
    libssl = lock.packages[1]
    assert (libssl.name, libssl.version) == ("libssl", "3.0.11")
    assert libssl.url.startswith("https://deb.example.org/debian-security/pool/main/l/libssl/")


@pytest.mark.parametrize(
    "packages, expected",
    [
        pytest.param(
            ["app 1.0; Depends: b | c", "b 1.0", "c 1.0"], ["app", "b"], id="first-alternative"
        ),
        pytest.param(
            ["app 1.0; Depends: b | c, needs-c", "b 1.0", "c 1.0", "needs-c 1.0; Depends: c"],
            ["app", "c", "needs-c"],
            id="alternative-already-needed",
        ),
        pytest.param(
            ["app 1.0; Depends: b (>= 2) | c", "b 1.0", "c 1.0"], ["app", "c"], id="first-too-old"
        ),
        pytest.param(
            ["app 1.0; Depends: awk", "mawk 1.3; Provides: awk"], ["app", "mawk"], id="one-provider"
        ),
        pytest.param(
            [
                "app 1.0; Depends: libx (>= 2)",
                "libx-ng 5.0; Provides: libx (= 2.5)",
                "plain 1; Provides: libx",
            ],
            ["app", "libx-ng"],
            id="versioned-provides",
        ),
        pytest.param(
            ["app 1.0; Depends: python3:any (>= 3.11)", "python3 3.11.2-1"],
            ["app", "python3"],
            id="arch-qualifier",
        ),
        pytest.param(
            [
                "app 1.0; Depends: tool",
                "tool 1.0; Architecture: all",
                "other 1.0; Architecture: arm64",
            ],
            ["app", "tool"],
            id="architecture-all",
        ),
    ],
)
def test_resolution(packages: list[str], expected: list[str]) -> None:
    assert names(lock_packages([suite(MAIN, *packages)], "amd64", ["app"])) == expected


def test_ambiguous_virtual_package_asks_for_a_choice() -> None:
    index = suite(
        MAIN, "base 1.0; Pre-Depends: awk", "mawk 1.3; Provides: awk", "gawk 5.2; Provides: awk"
    )
    with pytest.raises(
        ResolutionError, match=r"base → awk: awk is a virtual package provided by gawk, mawk"
    ):
        lock_packages([index], "amd64", ["base"])
    assert names(lock_packages([index], "amd64", ["base", "mawk"])) == ["base", "mawk"]


def test_missing_dependency_names_the_chain() -> None:
    index = suite(
        MAIN, "app 1.0; Depends: libpython", "libpython 3.11; Depends: libffi (>= 9)", "libffi 3.4"
    )
    with pytest.raises(ResolutionError) as error:
        lock_packages([index], "amd64", ["app"])
    assert str(error.value).startswith("app → libpython → libffi (>= 9): libffi is at version 3.4.")


def test_unknown_dependency_names_the_chain() -> None:
    index = suite(MAIN, "app 1.0; Depends: ghost | phantom")
    with pytest.raises(
        ResolutionError, match="app → ghost | phantom: no package is or provides ghost"
    ):
        lock_packages([index], "amd64", ["app"])


@pytest.mark.parametrize(
    "requested, message",
    [
        pytest.param(
            "nothing", "nothing is in none of the indexes: check the spelling", id="unknown"
        ),
        pytest.param(
            "awk",
            "awk is in none of the indexes: it is a virtual package provided by mawk",
            id="virtual",
        ),
    ],
)
def test_requested_package_must_exist(requested: str, message: str) -> None:
    with pytest.raises(ResolutionError, match=message):
        lock_packages([suite(MAIN, "mawk 1.3; Provides: awk")], "amd64", [requested])


def test_conflicting_closure_is_an_error() -> None:
    index = suite(MAIN, "app 1.0; Depends: a, b", "a 1.0; Conflicts: b", "b 1.0")
    with pytest.raises(
        ResolutionError, match=r"app → a \(a 1.0\) declares 'Conflicts: b', which app → b"
    ):
        lock_packages([index], "amd64", ["app"])


def test_platform_facts_come_from_libc6_and_the_interpreter() -> None:
    index = suite(
        MAIN,
        "python3 3.11.2-1+b1; Depends: python3.11 (>= 3.11.2-1~)",
        "python3.11 3.11.2-6+deb12u1; Depends: libc6",
        "libc6 2.36-9+deb12u4",
    )
    platform = lock_packages([index], "amd64", ["python3"]).platform
    assert (platform.architecture, platform.glibc_version, platform.python_version) == (
        "amd64",
        "2.36",
        "3.11.2",
    )


def test_lock_is_canonical_and_independent_of_input_order() -> None:
    packages = ["app 1.0; Depends: b, c", "b 1:2.0-1", "c 1.0"]
    forward = lock_packages([suite(MAIN, *packages)], "amd64", ["app", "c"])
    backward = lock_packages([suite(MAIN, *reversed(packages))], "amd64", ["c", "app", "c"])
    assert PackageLocks((forward,)).to_json() == PackageLocks((backward,)).to_json()
    whole = json.loads(PackageLocks((forward,)).to_json())
    assert whole["format_version"] == FORMAT_VERSION
    assert whole["requested"] == ["app", "c"]
    document = whole["architectures"]["amd64"]
    assert document["packages"][1] == {
        "architecture": "amd64",
        "depends": "",
        "name": "b",
        "pre_depends": "",
        "provides": "",
        "sha256": document["packages"][1]["sha256"],
        "size": 1000,
        "url": "https://deb.example.org/debian/pool/main/b/b/b_2.0-1_amd64.deb",
        "version": "1:2.0-1",
    }
    assert document["sources"] == [
        {
            "components": ["main"],
            "index_sha256": {"main/binary-amd64/Packages.xz": "ab" * 32},
            "release_date": "Sat, 10 Jun 2023 08:55:33 UTC",
            "suite": "bookworm",
            "url": "https://deb.example.org/debian",
        }
    ]
    assert PackageLocks.from_json(PackageLocks((forward,)).to_json()).locks == (forward,)
    assert forward.packages[1].filename == "b_2.0-1_amd64.deb"


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("{", "not valid JSON", id="json"),
        pytest.param(
            '{"format_version": 2}',
            "format_version 2, and this tool reads 3 .*each architecture",
            id="version",
        ),
        pytest.param(
            '{"format_version": 3, "architecture": "amd64"}',
            "lacks or misspells a field",
            id="fields",
        ),
        pytest.param(
            '{"format_version": 3, "requested": [], "architectures": {}}',
            r"needs each architecture once, not \[\]",
            id="no-architecture",
        ),
    ],
)
def test_reading_a_bad_lock(text: str, message: str) -> None:
    with pytest.raises(LockFormatError, match=message):
        PackageLocks.from_json(text)


def test_each_architecture_is_locked_against_its_own_index() -> None:
    amd64 = lock_packages([suite(MAIN, "app 1.0; Depends: b", "b 1.0")], "amd64", ["app"])
    arm64_index = suite(
        MAIN, "app 1.0; Depends: b; Architecture: arm64", "b 1.1; Architecture: arm64"
    )
    arm64 = lock_packages([arm64_index], "arm64", ["app"])
    locks = PackageLocks.from_json(PackageLocks((amd64, arm64)).to_json())
    assert locks.architectures == ("amd64", "arm64")
    assert [p.version for p in locks.for_architecture("arm64").packages] == ["1.0", "1.1"]
    assert {p.architecture for p in locks.for_architecture("arm64").packages} == {"arm64"}
    with pytest.raises(LockFormatError, match="no packages for s390x, only for amd64, arm64"):
        locks.for_architecture("s390x")


def test_every_architecture_requests_the_same_packages() -> None:
    amd64 = lock_packages([suite(MAIN, "app 1.0", "b 1.0")], "amd64", ["app"])
    other = lock_packages([suite(MAIN, "b 1.0; Architecture: arm64")], "arm64", ["b"])
    with pytest.raises(LockFormatError, match="request the same packages"):
        PackageLocks((amd64, other))


# Control data of Debian 12 packages, as their Packages stanzas have it (fields the check does not
# read left out), and the stand-ins the cases below swap in.
BOOKWORM = """
Package: base-files
Version: 12.4+deb12u15
Architecture: amd64
Pre-Depends: awk
Provides: base

Package: mawk
Version: 1.3.4.20200120-3.1
Architecture: amd64
Pre-Depends: libc6 (>= 2.29)
Provides: awk

Package: bash
Version: 5.2.15-2+b13
Architecture: amd64
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
Depends: base-files (>= 2.1.12)

Package: libtinfo6
Version: 6.4-4
Architecture: amd64
Depends: libc6 (>= 2.34)

Package: libc6
Version: 2.36-9+deb12u14
Architecture: amd64
Depends: libgcc-s1

Package: libgcc-s1
Version: 12.2.0-14+deb12u1
Architecture: amd64
Depends: gcc-12-base (= 12.2.0-14+deb12u1), libc6 (>= 2.35)
Provides: libgcc1 (= 1:12.2.0-14+deb12u1)

Package: gcc-12-base
Version: 12.2.0-14+deb12u1
Architecture: amd64

Package: ca-certificates
Version: 20230311
Architecture: all
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0

Package: openssl
Version: 3.0.22-1~deb12u2
Architecture: amd64
Depends: libc6 (>= 2.34)

Package: debconf
Version: 1.5.82
Architecture: all
Provides: debconf-2.0

Package: python3-certifi
Version: 2022.9.24-1
Architecture: all
Depends: ca-certificates, python3:any

Package: python3
Version: 3.11.2-1+b1
Architecture: amd64
"""
REQUESTED = ("bash", "ca-certificates", "python3-certifi")


def _control_lock(text: str, requested: tuple[str, ...] = REQUESTED) -> PackageLock:
    packages = tuple(
        LockedPackage(
            name=paragraph["Package"],
            version=paragraph["Version"],
            architecture=paragraph["Architecture"],
            url=f"https://deb.example.org/debian/pool/main/{paragraph['Package']}.deb",
            sha256="ab" * 32,
            size=1000,
            depends=paragraph.get("Depends", ""),
            pre_depends=paragraph.get("Pre-Depends", ""),
            provides=paragraph.get("Provides", ""),
        )
        for paragraph in deb822.Packages.iter_paragraphs(text, use_apt_pkg=False)
    )
    return PackageLock("amd64", (), requested, PlatformFacts("amd64", "2.36", "3.11.2"), packages)


def _replace(text: str, package: str, stanza: str) -> str:
    """The control data with one package's stanza replaced (by nothing: the package removed)."""
    paragraphs = text.strip().split("\n\n")
    kept = [p for p in paragraphs if not p.startswith(f"Package: {package}\n")]
    assert len(kept) == len(paragraphs) - 1, package
    return "\n\n".join(kept + ([stanza.strip()] if stanza else [])) + "\n"


def test_a_closed_lock_passes() -> None:
    """Pre-Depends on a virtual package (awk by mawk), an alternative met by its first member,
    a versioned Depends, an `all` package depending on an amd64 one, and `python3:any`."""
    check_closed(_control_lock(BOOKWORM))


@pytest.mark.parametrize(
    "control, expected",
    [
        pytest.param(
            _replace(BOOKWORM, "libc6", ""),
            [
                "  - libc6 (no locked package is or provides it), needed by:",
                "      mawk 1.3.4.20200120-3.1 (Pre-Depends: libc6 (>= 2.29))",
                "      bash 5.2.15-2+b13 (Pre-Depends: libc6 (>= 2.36))",
                "      libtinfo6 6.4-4 (Depends: libc6 (>= 2.34))",
                "      libgcc-s1 12.2.0-14+deb12u1 (Depends: libc6 (>= 2.35))",
                "      openssl 3.0.22-1~deb12u2 (Depends: libc6 (>= 2.34))",
            ],
            id="pre-depends-and-depends",
        ),
        pytest.param(
            _replace(BOOKWORM, "mawk", ""),
            [
                "  - awk (no locked package is or provides it), needed by:",
                "      base-files 12.4+deb12u15 (Pre-Depends: awk)",
            ],
            id="virtual-package",
        ),
        pytest.param(
            _replace(BOOKWORM, "libc6", "Package: libc6\nVersion: 2.35-1\nArchitecture: amd64"),
            [
                "  - libc6 (locked at version 2.35-1 for amd64), needed by:",
                "      bash 5.2.15-2+b13 (Pre-Depends: libc6 (>= 2.36))",
            ],
            id="version-too-old",
        ),
        pytest.param(
            _replace(BOOKWORM, "debconf", "Package: debconf\nVersion: 0.4\nArchitecture: all"),
            [
                "  - debconf | debconf-2.0 (locked at version 0.4 for all; no locked package is "
                "or provides it), needed by:",
                "      ca-certificates 20230311 (Depends: debconf (>= 0.5) | debconf-2.0)",
            ],
            id="no-alternative",
        ),
        pytest.param(
            _replace(
                BOOKWORM,
                "gcc-12-base",
                "Package: gcc-12-base\nVersion: 12.2.0-14+deb12u2\nArchitecture: amd64",
            ),
            [
                "  - gcc-12-base (locked at version 12.2.0-14+deb12u2 for amd64), needed by:",
                "      libgcc-s1 12.2.0-14+deb12u1 (Depends: gcc-12-base (= 12.2.0-14+deb12u1))",
            ],
            id="exact-version",
        ),
        pytest.param(
            _replace(
                BOOKWORM,
                "python3-certifi",
                "Package: python3-certifi\nVersion: 2022.9.24-1\nArchitecture: all\n"
                "Depends: python3:arm64",
            ),
            [
                "  - python3:arm64 (locked at version 3.11.2-1+b1 for amd64), needed by:",
                "      python3-certifi 2022.9.24-1 (Depends: python3:arm64)",
            ],
            id="other-architecture",
        ),
    ],
)
def test_an_unclosed_lock_names_each_missing_dependency_and_who_needs_it(
    control: str, expected: list[str]
) -> None:
    with pytest.raises(UnclosedLockError) as error:
        check_closed(_control_lock(control))
    lines = str(error.value).splitlines()
    assert lines[0] == (
        "The lock is not closed under its packages' dependencies (Depends and Pre-Depends):"
    )
    assert lines[1:] == expected


@pytest.mark.parametrize(
    "package, stanza",
    [
        pytest.param(
            "debconf",
            "Package: cdebconf\nVersion: 0.270\nArchitecture: amd64\nProvides: debconf-2.0",
            id="second-alternative-by-provides",
        ),
        pytest.param(
            "python3-certifi",
            "Package: python3-certifi\nVersion: 2022.9.24-1\nArchitecture: all\n"
            "Depends: python3:any (>= 3.11~), libgcc1 (>= 1:4.2)",
            id="any-qualifier-and-versioned-provides",
        ),
        pytest.param(
            "python3-certifi",
            "Package: python3-certifi\nVersion: 2022.9.24-1\nArchitecture: all\n"
            "Depends: python3:amd64, ca-certificates:amd64",
            id="own-architecture",
        ),
    ],
)
def test_dependencies_met_the_ways_debian_allows(package: str, stanza: str) -> None:
    check_closed(_control_lock(_replace(BOOKWORM, package, stanza)))


def test_an_unversioned_provides_does_not_meet_a_versioned_dependency() -> None:
    control = _replace(
        BOOKWORM,
        "base-files",
        "Package: base-files\nVersion: 12.4+deb12u15\nArchitecture: amd64\n"
        "Pre-Depends: awk (>= 1)",
    )
    with pytest.raises(UnclosedLockError, match=r"awk \(provided by mawk\), needed by:"):
        check_closed(_control_lock(control))


def test_a_requested_package_must_be_locked() -> None:
    with pytest.raises(UnclosedLockError) as error:
        check_closed(_control_lock(BOOKWORM, requested=(*REQUESTED, "tzdata")))
    assert str(error.value) == "The lock does not hold its requested tzdata."


def test_a_lock_from_the_resolver_passes_the_check() -> None:
    index = suite(
        MAIN,
        "app 1.0; Pre-Depends: awk; Depends: debconf (>= 0.5) | debconf-2.0, python3:any (>= 3)",
        "mawk 1.3; Provides: awk",
        "cdebconf 0.270; Provides: debconf-2.0",
        "python3 3.11.2-1",
    )
    lock = lock_packages([index], "amd64", ["app"])
    assert names(lock) == ["app", "cdebconf", "mawk", "python3"]
    assert read_lock(PackageLocks((lock,)).to_json()).locks == (lock,)


def test_reading_an_unclosed_lock_fails() -> None:
    document = json.loads(PackageLocks((_control_lock(BOOKWORM),)).to_json())
    section = document["architectures"]["amd64"]
    section["packages"] = [p for p in section["packages"] if p["name"] != "libc6"]
    with pytest.raises(UnclosedLockError, match="libc6 \\(no locked package is or provides it\\)"):
        read_lock(json.dumps(document))
