"""A file pinned by its URL, sha256 and size, written as one command-line argument:
`URL#sha256=HEX&size=N` (pip's hash fragment, with the size added). The backend writes it, the
image tool reads it, and the process's cache key is the pin rather than the file."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FRAGMENT = re.compile(r"sha256=(?P<sha256>[0-9a-f]{64})&size=(?P<size>[0-9]+)")


@dataclass(frozen=True)
class PinnedUrl:
    url: str
    sha256: str
    size: int

    def to_argument(self) -> str:
        return f"{self.url}#sha256={self.sha256}&size={self.size}"

    @classmethod
    def from_argument(cls, value: str) -> PinnedUrl | None:
        """The pin `value` writes, or None when it is no pinned URL (a local path)."""
        url, _, fragment = value.partition("#")
        match = _FRAGMENT.fullmatch(fragment)
        if "://" not in url or not match:
            return None
        return cls(url, match["sha256"], int(match["size"]))
