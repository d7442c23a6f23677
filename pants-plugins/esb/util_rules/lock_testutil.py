"""Locks for the backend's tests: Debian base locks, built with the contract's model as
`debian-lock` writes them, and the pinned uv wheel that locks and installs."""

from __future__ import annotations

import hashlib
from typing import Sequence

from esb.subsystems.uv import UvWheel
from esb_contract.base_lock import LockedPackage, LockedSource, PackageLock
from esb_contract.pinned_url import PinnedUrl
from esb_contract.platform_facts import PlatformFacts

UV_WHEEL = UvWheel(PinnedUrl("https://files.example/uv-0.13.9.whl", "ab" * 32, 123))

POOL = "https://deb.debian.org/debian/pool/main"
# libc6 and python3 give the lock its platform facts.
PACKAGES = (("libc6", "2.36-9"), ("python3", "3.11.2-1+b1"))


def debian_lock(
    architecture: str = "amd64", packages: Sequence[tuple[str, str]] = PACKAGES
) -> PackageLock:
    """A lock of `packages` (name, version) for `architecture`, requesting python3."""
    return PackageLock(
        architecture=architecture,
        sources=(
            LockedSource(
                url="https://deb.debian.org/debian",
                suite="bookworm",
                components=("main",),
                release_date="Sat, 10 Jun 2023 08:55:00 UTC",
                index_sha256={f"main/binary-{architecture}/Packages.xz": "ef" * 32},
            ),
        ),
        requested=("python3",),
        platform=PlatformFacts(architecture, "2.36", "3.11.2"),
        packages=tuple(
            LockedPackage(
                name=name,
                version=version,
                architecture=architecture,
                url=f"{POOL}/{name[0]}/{name}/{name}_{version}_{architecture}.deb",
                sha256=hashlib.sha256(name.encode()).hexdigest(),
                size=1000,
                depends="",
                pre_depends="",
                provides="",
            )
            for name, version in packages
        ),
    )
