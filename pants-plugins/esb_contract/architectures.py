"""The CPU architectures images are built for, by every name each side uses for them."""

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Architecture:
    name: str
    """As Debian and OCI images (Go) name it, e.g. `amd64`: the key of `ARCHITECTURES`."""
    machine: str
    """As the kernel and wheel tags name it, e.g. `x86_64`."""
    tool_platform: str
    """As tool downloads are listed (`[esb-uv].known_versions`), e.g. `linux_x86_64`."""
    multiarch: str
    """Debian's multiarch triplet, the library directory under `/lib` and `/usr/lib`."""


ARCHITECTURES: Dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("amd64", "x86_64", "linux_x86_64", "x86_64-linux-gnu"),
        Architecture("arm64", "aarch64", "linux_arm64", "aarch64-linux-gnu"),
    )
}

# The platforms a Debian base is built for, as Docker spells them (`linux/<architecture>`).
PLATFORMS: Dict[str, Architecture] = {f"linux/{a.name}": a for a in ARCHITECTURES.values()}
