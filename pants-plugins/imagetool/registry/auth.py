"""The pieces of registry authentication that are plain data: challenges, scopes, headers.

A registry answers an unauthenticated request with 401 and a `WWW-Authenticate` header: either
`Basic realm="…"` (send the user and password with every request), or `Bearer realm="…",
service="…",scope="…"` (get a token from `realm` for `service` and the scopes, authenticating
there with Basic when there are credentials, anonymously otherwise, then send the token).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagetool.registry.credentials import Credentials

# `scheme` then `key=value` or `key="quoted, value"` parameters; a new challenge starts at a
# token that is not followed by `=`.
_CHALLENGE_START = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?=\s|$)")
_PARAMETER = re.compile(r'\s*,?\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')
_QUOTED_PAIR = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Challenge:
    scheme: str
    """Lowercase: `basic` or `bearer` (others are parsed, and ignored by the client)."""
    parameters: Mapping[str, str]
    """Keys lowercase, values unquoted: `realm`, `service`, `scope`, `error`."""


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a `WWW-Authenticate` value, in order (RFC 7235, as registries send them)."""
    challenges = []
    position = 0
    while position < len(header):
        start = _CHALLENGE_START.match(header, position)
        if start is None:
            break
        position = start.end()
        parameters = {}
        while (parameter := _PARAMETER.match(header, position)) is not None:
            key, value = parameter.groups()
            if value.startswith('"'):
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            parameters[key.lower()] = value
            position = parameter.end()
        challenges.append(Challenge(start.group(1).lower(), parameters))
    return challenges


@dataclass(frozen=True, order=True)
class Scope:
    """Access to one repository, as token servers name it: `repository:esb/api:pull,push`."""

    repository: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"repository:{self.repository}:{','.join(self.actions)}"


def pull_scope(repository: str) -> Scope:
    return Scope(repository, ("pull",))


def push_scope(repository: str) -> Scope:
    return Scope(repository, ("pull", "push"))


def basic_authorization(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.secret}".encode("utf-8")
    return f"Basic {base64.b64encode(pair).decode('ascii')}"


def token_query(
    challenge: Challenge, scopes: Sequence[Scope], credentials: Credentials | None
) -> list[tuple[str, str]]:
    """The query of a token request: the challenge's service, and its scope plus ours."""
    query = (
        [("service", challenge.parameters["service"])] if "service" in challenge.parameters else []
    )
    if credentials is not None:
        query.append(("account", credentials.username))
    wanted = [str(scope) for scope in sorted(scopes)]
    requested = challenge.parameters.get("scope", "").split()
    query += [("scope", scope) for scope in dict.fromkeys(wanted + requested)]
    return query


def token_from_response(body: Any) -> str | None:
    """The bearer token in a token server's JSON answer (`token`, or OAuth2's `access_token`)."""
    if not isinstance(body, Mapping):
        return None
    token = body.get("token") or body.get("access_token")
    return token if isinstance(token, str) and token else None
