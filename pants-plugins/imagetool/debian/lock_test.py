from __future__ import annotations

import hashlib
import json

import pytest
from debian import deb822

from imagetool.debian.archive import Source, SuiteIndex
from imagetool.debian.lock import (
    LockFormatError,
    PackageLock,
    ResolutionError,
    lock_packages,
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
        pytest.param(["app 1.0; Depends: b | c", "b 1.0", "c 1.0"], ["app", "b"], id="first-alternative"),
        pytest.param(
            ["app 1.0; Depends: b | c, needs-c", "b 1.0", "c 1.0", "needs-c 1.0; Depends: c"],
            ["app", "c", "needs-c"],
            id="alternative-already-needed",
        ),
        pytest.param(["app 1.0; Depends: b (>= 2) | c", "b 1.0", "c 1.0"], ["app", "c"], id="first-too-old"),
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
    index = suite(MAIN, "base 1.0; Pre-Depends: awk", "mawk 1.3; Provides: awk", "gawk 5.2; Provides: awk")
    with pytest.raises(ResolutionError, match=r"base → awk: awk is a virtual package provided by gawk, mawk"):
        lock_packages([index], "amd64", ["base"])
    assert names(lock_packages([index], "amd64", ["base", "mawk"])) == ["base", "mawk"]


def test_missing_dependency_names_the_chain() -> None:
    index = suite(MAIN, "app 1.0; Depends: libpython", "libpython 3.11; Depends: libffi (>= 9)", "libffi 3.4")
    with pytest.raises(ResolutionError) as error:
        lock_packages([index], "amd64", ["app"])
    assert str(error.value).startswith("app → libpython → libffi (>= 9): libffi is at version 3.4.")


def test_unknown_dependency_names_the_chain() -> None:
    index = suite(MAIN, "app 1.0; Depends: ghost | phantom")
    with pytest.raises(ResolutionError, match="app → ghost | phantom: no package is or provides ghost"):
        lock_packages([index], "amd64", ["app"])


@pytest.mark.parametrize(
    "requested, message",
    [
        pytest.param("nothing", "nothing is in none of the indexes: check the spelling", id="unknown"),
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
    with pytest.raises(ResolutionError, match=r"app → a \(a 1.0\) declares 'Conflicts: b', which app → b"):
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
    assert forward.to_json() == backward.to_json()
    document = json.loads(forward.to_json())
    assert document["format_version"] == 1
    assert document["requested"] == ["app", "c"]
    assert document["packages"][1] == {
        "architecture": "amd64",
        "depends": "",
        "name": "b",
        "pre_depends": "",
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
    assert PackageLock.from_json(forward.to_json()) == forward
    assert forward.packages[1].filename == "b_2.0-1_amd64.deb"


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("{", "not valid JSON", id="json"),
        pytest.param('{"format_version": 2}', "not of format_version 1", id="version"),
        pytest.param(
            '{"format_version": 1, "architecture": "amd64"}',
            "lacks or misspells a field",
            id="fields",
        ),
    ],
)
def test_reading_a_bad_lock(text: str, message: str) -> None:
    with pytest.raises(LockFormatError, match=message):
        PackageLock.from_json(text)
