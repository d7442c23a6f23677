"""The reference grammar against cases of the OCI distribution specification and
github.com/distribution/reference's own test table."""

from __future__ import annotations

import re

import pytest

from esb_contract.reference import NAME, PATH_COMPONENT, REGISTRY, REPOSITORY, SHA256_DIGEST, TAG

DIGEST_HEX = "0123456789abcdef" * 4

CASES = [
    (REGISTRY, "localhost", True),
    (REGISTRY, "localhost:5000", True),
    (REGISTRY, "127.0.0.1:5000", True),
    (REGISTRY, "sub-dom1.foo.com", True),
    (REGISTRY, "xn--n3h.com", True),
    (REGISTRY, "Registry.Example.COM", True),
    (REGISTRY, "[2001:db8::1]", True),
    (REGISTRY, "[::1]:5000", True),
    (REGISTRY, "[fe80::1%eth0]:5000", False),
    (REGISTRY, "foo_bar.com:8080", False),
    (REGISTRY, "-foo.com", False),
    (REGISTRY, "foo-.com", False),
    (REGISTRY, "foo.com:", False),
    (REGISTRY, "foo.com:port", False),
    (REGISTRY, "https://foo.com", False),
    (REGISTRY, "café.example", False),
    (REGISTRY, "", False),
    (PATH_COMPONENT, "foo.bar_baz-qux", True),
    (PATH_COMPONENT, "foo__bar", True),
    (PATH_COMPONENT, "foo---bar", True),
    (PATH_COMPONENT, "foo___bar", False),
    (PATH_COMPONENT, "foo-", False),
    (PATH_COMPONENT, "_foo", False),
    (PATH_COMPONENT, "Foo", False),
    (REPOSITORY, "library/python", True),
    (REPOSITORY, "a/b/c", True),
    (REPOSITORY, "b.gcr.io/test.example.com/my-app", True),
    (REPOSITORY, "esb//api", False),
    (REPOSITORY, "esb/api/", False),
    (REPOSITORY, "aa/asdf$$^/aa", False),
    (REPOSITORY, "café", False),
    (NAME, "registry.example:5000/esb/hello", True),
    (NAME, "[2001:db8::1]:5000/esb/hello", True),
    (NAME, "esb/hello", True),
    (NAME, "esb/Hello", False),
    (TAG, "latest", True),
    (TAG, "v1.2.3-rc_4", True),
    (TAG, "_x", True),
    (TAG, "A" * 128, True),
    (TAG, "A" * 129, False),
    (TAG, ".x", False),
    (TAG, "-x", False),
    (TAG, "café", False),
    (TAG, "a b", False),
    (TAG, "a:b", False),
    (TAG, "latest\n", False),
    (TAG, "", False),
    (SHA256_DIGEST, f"sha256:{DIGEST_HEX}", True),
    (SHA256_DIGEST, f"sha256:{DIGEST_HEX.upper()}", False),
    (SHA256_DIGEST, f"sha256:{DIGEST_HEX[:-1]}", False),
    (SHA256_DIGEST, f"sha512:{DIGEST_HEX}", False),
]


@pytest.mark.parametrize(
    "pattern, text, valid",
    CASES,
    ids=[f"{'ok' if valid else 'bad'}:{text[:40]!r}" for _, text, valid in CASES],
)
def test_the_grammar(pattern: re.Pattern[str], text: str, valid: bool) -> None:
    assert bool(pattern.fullmatch(text)) is valid
