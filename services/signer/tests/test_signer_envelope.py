import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from esb_signer.envelope import (
    InvalidEnvelope,
    b64url_decode,
    b64url_encode,
    canonical_bytes,
    key_id,
    sign,
    verify,
)

PAYLOAD = {
    "function": "resize-image",
    "args": {"width": 640, "height": 480},
    "retry": None,
}


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_sign_verify_round_trip_through_json(private_key: Ed25519PrivateKey) -> None:
    envelope = orjson.loads(orjson.dumps(sign(PAYLOAD, private_key)))

    assert envelope["alg"] == "Ed25519"
    assert envelope["key_id"] == key_id(private_key.public_key())
    assert len(b64url_decode(envelope["signature"])) == 64
    assert verify(envelope, private_key.public_key()) == PAYLOAD


def test_signature_covers_content_not_key_order(private_key: Ed25519PrivateKey) -> None:
    envelope = sign(PAYLOAD, private_key)
    reordered = {**envelope, "payload": dict(reversed(list(PAYLOAD.items())))}

    assert verify(reordered, private_key.public_key()) == PAYLOAD


def test_canonical_bytes_sort_keys_and_drop_whitespace() -> None:
    assert canonical_bytes({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == (
        b'{"a":[1,{"c":3,"d":2}],"b":1}'
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda envelope: {**envelope, "payload": {**PAYLOAD, "retry": 3}},
        lambda envelope: {**envelope, "payload": None},
        lambda envelope: {
            **envelope,
            "signature": b64url_encode(bytes(64)),
        },
        lambda envelope: {
            **envelope,
            "signature": b64url_encode(
                bytes([b64url_decode(envelope["signature"])[0] ^ 1])
                + b64url_decode(envelope["signature"])[1:]
            ),
        },
    ],
    ids=["changed-field", "replaced-payload", "zero-signature", "flipped-bit"],
)
def test_tampering_is_detected(private_key: Ed25519PrivateKey, tamper) -> None:
    envelope = sign(PAYLOAD, private_key)

    with pytest.raises(InvalidEnvelope, match="signature does not match"):
        verify(tamper(envelope), private_key.public_key())


def test_envelope_from_another_key_is_rejected(private_key: Ed25519PrivateKey) -> None:
    envelope = sign(PAYLOAD, Ed25519PrivateKey.generate())

    with pytest.raises(InvalidEnvelope, match="signed by key"):
        verify(envelope, private_key.public_key())


def test_relabelled_key_id_does_not_help_a_forger(
    private_key: Ed25519PrivateKey,
) -> None:
    forged = {
        **sign(PAYLOAD, Ed25519PrivateKey.generate()),
        "key_id": key_id(private_key.public_key()),
    }

    with pytest.raises(InvalidEnvelope, match="signature does not match"):
        verify(forged, private_key.public_key())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alg": "HS256"}, "unsupported algorithm"),
        ({"signature": "not base64!"}, "not base64url"),
        ({"signature": 42}, "not base64url"),
        ({"extra": 1}, "not an envelope"),
    ],
)
def test_malformed_envelopes_are_rejected(
    private_key: Ed25519PrivateKey, change: dict, message: str
) -> None:
    envelope = {**sign(PAYLOAD, private_key), **change}

    with pytest.raises(InvalidEnvelope, match=message):
        verify(envelope, private_key.public_key())


def test_non_object_is_not_an_envelope(private_key: Ed25519PrivateKey) -> None:
    with pytest.raises(InvalidEnvelope, match="not an envelope"):
        verify([PAYLOAD], private_key.public_key())


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xfb\xff", bytes(range(64))])
def test_b64url_round_trip_without_padding(data: bytes) -> None:
    encoded = b64url_encode(data)

    assert "=" not in encoded
    assert "+" not in encoded and "/" not in encoded
    assert b64url_decode(encoded) == data
