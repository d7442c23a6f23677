"""Signed envelopes: a JSON payload with an Ed25519 signature over its canonical form.

An envelope is `{"alg": "Ed25519", "key_id": ..., "payload": ..., "signature": ...}`.
The signature covers the payload serialised with sorted keys and no whitespace, so any
JSON encoding of the same payload verifies; `signature` is unpadded base64url.
"""

import base64
import hashlib
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "Ed25519"
ENVELOPE_FIELDS = frozenset({"alg", "key_id", "payload", "signature"})


class InvalidEnvelope(ValueError):
    pass


def canonical_bytes(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a key, so a verifier can tell which key it needs."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: Any, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    return {
        "alg": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "payload": payload,
        "signature": b64url_encode(private_key.sign(canonical_bytes(payload))),
    }


def verify(envelope: Any, public_key: Ed25519PublicKey) -> Any:
    """Return the payload if `public_key` signed it; raise InvalidEnvelope if not."""
    if not isinstance(envelope, dict) or envelope.keys() != ENVELOPE_FIELDS:
        raise InvalidEnvelope(
            f"not an envelope: expected exactly the fields {sorted(ENVELOPE_FIELDS)}"
        )
    if envelope["alg"] != ALGORITHM:
        raise InvalidEnvelope(f"unsupported algorithm {envelope['alg']!r}")
    if envelope["key_id"] != key_id(public_key):
        raise InvalidEnvelope(
            f"signed by key {envelope['key_id']!r}, not {key_id(public_key)!r}"
        )
    try:
        signature = b64url_decode(envelope["signature"])
    except (TypeError, ValueError):  # binascii.Error is a ValueError
        raise InvalidEnvelope("signature is not base64url") from None
    try:
        public_key.verify(signature, canonical_bytes(envelope["payload"]))
    except InvalidSignature:
        raise InvalidEnvelope("signature does not match the payload") from None
    return envelope["payload"]
