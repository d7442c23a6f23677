"""Image references, `[registry[:port]/]repository[:tag][@sha256:…]`, read as Docker reads them.

A name without a registry is on Docker Hub (`docker.io`), and a one-part Docker Hub name is in
its `library/` namespace: `python:3.12` is `docker.io/library/python:3.12`. The first part is a
registry when it holds a `.` or a `:`, is `localhost`, or has capital letters (Docker's rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from esb_contract import reference as grammar
from imagetool.errors import ToolError

DOCKER_HUB = "docker.io"
# The names Docker Hub goes by in references (and in Docker's own config files).
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


class InvalidReferenceError(ToolError, ValueError):
    """A reference does not follow the grammar, or lacks a part the operation needs."""


@dataclass(frozen=True)
class Reference:
    registry: str
    """`host[:port]` as written (Docker Hub as `docker.io`), e.g. `127.0.0.1:5000`."""
    repository: str
    """The path within the registry, e.g. `library/python` or `esb/api`."""
    tag: str | None = None
    digest: str | None = None
    """`sha256:<64 hex>`; when a reference has both, the digest decides what is pulled."""

    @property
    def name(self) -> str:
        """`registry/repository`, e.g. `docker.io/library/python`."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def normalize_registry(registry: str) -> str:
    """The name a registry is known by here: Docker Hub's aliases become `docker.io`."""
    return DOCKER_HUB if registry in _DOCKER_HUB_ALIASES else registry


def parse_registry(text: str) -> str:
    """`host[:port]`, checked and normalized; for options that name a registry."""
    if not grammar.REGISTRY.fullmatch(text):
        raise InvalidReferenceError(
            f"{text!r} is not a registry: write `host` or `host:port`, e.g. `registry.example:5000`."
        )
    return normalize_registry(text)


def parse_repository(text: str) -> str:
    """A repository path within a registry, e.g. `esb/service-base`, checked."""
    if not grammar.REPOSITORY.fullmatch(text):
        hint = " (repository names are lowercase)" if text != text.lower() else ""
        raise InvalidReferenceError(
            f"{text!r} is not a repository name{hint}; use lowercase letters, digits and separators "
            "(`.`, `_`, `__`, `-`) in `/`-separated parts, e.g. `esb/api`."
        )
    return text


def parse_tag(text: str) -> str:
    if not grammar.TAG.fullmatch(text):
        raise InvalidReferenceError(
            f"{text!r} is not a tag; use up to 128 letters, digits, `_`, `.` and `-`, not starting "
            "with `.` or `-`."
        )
    return text


def parse_reference(text: str) -> Reference:
    """Parse `text` as Docker does (see the module's docstring)."""
    name, at, digest = text.partition("@")
    if at and not grammar.SHA256_DIGEST.fullmatch(digest):
        raise InvalidReferenceError(
            f"{text!r}: {digest!r} is not a digest this tool reads; write `@sha256:` and 64 "
            "lowercase hex digits."
        )
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        _check_part(text, parse_tag, tag)
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not grammar.REGISTRY.fullmatch(first):
            raise InvalidReferenceError(f"{text!r}: {first!r} is not a registry host[:port].")
        registry, repository = normalize_registry(first), rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    _check_part(text, parse_repository, repository)
    if len(f"{registry}/{repository}") > grammar.MAX_NAME_LENGTH:
        raise InvalidReferenceError(
            f"{text!r}: the name is longer than {grammar.MAX_NAME_LENGTH} characters."
        )
    return Reference(registry, repository, tag, digest or None)


def _check_part(reference: str, parse: Callable[[str], str], part: str) -> None:
    """`parse(part)`, its error prefixed with the whole reference."""
    try:
        parse(part)
    except InvalidReferenceError as e:
        raise InvalidReferenceError(f"{reference!r}: {e}") from None


def reference_requiring_digest(text: str) -> Reference:
    """Parse a reference to pull for a build, which must pin the image's digest.

    A tag can be moved to another image at any time; a build that pulled by tag would not be
    reproducible, nor would Pants know when to pull again.
    """
    reference = parse_reference(text)
    if reference.digest is None:
        tagged = f"{reference.name}:{reference.tag or 'latest'}"
        raise InvalidReferenceError(
            f"{text!r} names no digest, and a build pulls only by digest (a tag can move). Pin it as "
            f"`{text if reference.tag else tagged}@sha256:<digest>`; find the digest with "
            f"`skopeo inspect docker://{tagged} | jq -r .Digest` or "
            f"`docker buildx imagetools inspect {tagged}`."
        )
    return reference
