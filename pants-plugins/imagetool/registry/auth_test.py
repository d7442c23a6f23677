from __future__ import annotations

import pytest

from imagetool.registry.auth import (
    Challenge,
    basic_authorization,
    parse_challenges,
    pull_scope,
    push_scope,
    token_from_response,
    token_query,
)
from imagetool.registry.credentials import Credentials


@pytest.mark.parametrize(
    "header, expected",
    [
        pytest.param(
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/python:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/python:pull",
                    },
                )
            ],
            id="docker-hub",
        ),
        pytest.param(
            'Basic realm="esb-test-registry"',
            [Challenge("basic", {"realm": "esb-test-registry"})],
            id="basic",
        ),
        pytest.param(
            'bearer Realm="https://a/token", scope="repository:x:pull,push repository:y:pull", '
            'error="insufficient_scope"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://a/token",
                        "scope": "repository:x:pull,push repository:y:pull",
                        "error": "insufficient_scope",
                    },
                )
            ],
            id="commas-inside-quotes",
        ),
        pytest.param(
            'Bearer realm="https://a/token",service=registry, Basic realm="fallback"',
            [
                Challenge("bearer", {"realm": "https://a/token", "service": "registry"}),
                Challenge("basic", {"realm": "fallback"}),
            ],
            id="two-challenges-unquoted-value",
        ),
        pytest.param(
            r'Basic realm="a \"quoted\" realm"',
            [Challenge("basic", {"realm": 'a "quoted" realm'})],
            id="escapes",
        ),
        pytest.param("", [], id="empty"),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_scopes() -> None:
    assert str(pull_scope("esb/api")) == "repository:esb/api:pull"
    assert str(push_scope("esb/api")) == "repository:esb/api:pull,push"


def test_basic_authorization() -> None:
    assert basic_authorization(Credentials("user", "pa:ss")) == "Basic dXNlcjpwYTpzcw=="


def test_token_query() -> None:
    challenge = Challenge(
        "bearer",
        {
            "realm": "https://a/token",
            "service": "reg",
            "scope": "repository:esb/api:pull repository:z:pull",
        },
    )
    scopes = (push_scope("esb/api"), pull_scope("esb/base"))
    assert token_query(challenge, scopes, Credentials("u", "s")) == [
        ("service", "reg"),
        ("account", "u"),
        ("scope", "repository:esb/api:pull,push"),
        ("scope", "repository:esb/base:pull"),
        ("scope", "repository:esb/api:pull"),
        ("scope", "repository:z:pull"),
    ]
    assert token_query(
        Challenge("bearer", {"realm": "https://a/token"}), (pull_scope("x"),), None
    ) == [("scope", "repository:x:pull")]


@pytest.mark.parametrize(
    "body, token",
    [
        pytest.param({"token": "t", "expires_in": 300}, "t", id="token"),
        pytest.param({"access_token": "a"}, "a", id="oauth2"),
        pytest.param({"token": ""}, None, id="empty"),
        pytest.param(["t"], None, id="not-an-object"),
    ],
)
def test_token_from_response(body: object, token: str | None) -> None:
    assert token_from_response(body) == token
