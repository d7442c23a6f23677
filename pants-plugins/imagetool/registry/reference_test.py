from __future__ import annotations

import pytest

from imagetool.registry.reference import (
    InvalidReferenceError,
    Reference,
    parse_reference,
    parse_registry,
    reference_requiring_digest,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("python", Reference("docker.io", "library/python"), id="official-image"),
        pytest.param(
            "python:3.12-slim", Reference("docker.io", "library/python", "3.12-slim"), id="tag"
        ),
        pytest.param("esb/api", Reference("docker.io", "esb/api"), id="hub-namespace"),
        pytest.param(
            "docker.io/python", Reference("docker.io", "library/python"), id="hub-explicit"
        ),
        pytest.param(
            "index.docker.io/esb/api:1", Reference("docker.io", "esb/api", "1"), id="hub-alias"
        ),
        pytest.param(
            f"python:3.12@{DIGEST}",
            Reference("docker.io", "library/python", "3.12", DIGEST),
            id="tag-and-digest",
        ),
        pytest.param(
            f"127.0.0.1:5000/esb/base@{DIGEST}",
            Reference("127.0.0.1:5000", "esb/base", None, DIGEST),
            id="host-port",
        ),
        pytest.param("localhost/x:y", Reference("localhost", "x", "y"), id="localhost"),
        pytest.param(
            "registry.example/a/b/c", Reference("registry.example", "a/b/c"), id="dotted-host"
        ),
        pytest.param("Registry/a", Reference("Registry", "a"), id="capitals-make-a-host"),
        pytest.param("[::1]:5000/a:b", Reference("[::1]:5000", "a", "b"), id="ipv6"),
        pytest.param(
            "localhost:5000",
            Reference("docker.io", "library/localhost", "5000"),
            id="port-alone-is-a-tag",
        ),
        pytest.param("a__b/c.d-e--f", Reference("docker.io", "a__b/c.d-e--f"), id="separators"),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param("esb/API", "repository names are lowercase", id="uppercase"),
        pytest.param("esb//api", "is not a repository name", id="empty-component"),
        pytest.param("esb/api:-x", "is not a tag", id="bad-tag"),
        pytest.param("esb/api@sha256:abc", "is not a digest this tool reads", id="short-digest"),
        pytest.param(
            "esb/api@sha512:" + "a" * 128, "is not a digest this tool reads", id="other-algorithm"
        ),
        pytest.param("-bad.host/a", "is not a registry", id="bad-host"),
        pytest.param("a/" + "b" * 260, "longer than 255", id="too-long"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        parse_reference(text)


def test_str_is_fully_qualified() -> None:
    assert (
        str(parse_reference(f"python:3.12@{DIGEST}")) == f"docker.io/library/python:3.12@{DIGEST}"
    )
    assert parse_reference("127.0.0.1:5000/esb/api").name == "127.0.0.1:5000/esb/api"


def test_parse_registry() -> None:
    assert parse_registry("127.0.0.1:5000") == "127.0.0.1:5000"
    assert parse_registry("index.docker.io") == "docker.io"
    with pytest.raises(InvalidReferenceError, match="not a registry"):
        parse_registry("https://registry.example")


def test_reference_requiring_digest() -> None:
    assert reference_requiring_digest(f"python:3.12@{DIGEST}").digest == DIGEST


@pytest.mark.parametrize(
    "text, pinned, inspected",
    [
        pytest.param(
            "python:3.12-slim-bookworm",
            "`python:3.12-slim-bookworm@sha256:<digest>`",
            "docker.io/library/python:3.12-slim-bookworm",
            id="tag",
        ),
        pytest.param(
            "127.0.0.1:5000/esb/base",
            "`127.0.0.1:5000/esb/base:latest@sha256:<digest>`",
            "127.0.0.1:5000/esb/base:latest",
            id="no-tag",
        ),
    ],
)
def test_reference_requiring_digest_refuses_tags(text: str, pinned: str, inspected: str) -> None:
    with pytest.raises(InvalidReferenceError) as error:
        reference_requiring_digest(text)
    message = str(error.value)
    assert "pulls only by digest" in message
    assert f"Pin it as {pinned}" in message
    assert f"`skopeo inspect docker://{inspected} | jq -r .Digest`" in message
    assert f"`docker buildx imagetools inspect {inspected}`" in message
