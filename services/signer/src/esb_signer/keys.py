"""Loading the signing key."""

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 key (`openssl genpkey -algorithm ed25519`).

    Raises OSError if the file can't be read and ValueError if it holds no usable key.
    """
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    # TypeError is what an encrypted key raises without a password.
    except (TypeError, UnsupportedAlgorithm) as error:
        raise ValueError(f"{path}: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 private key"
        )
    return key
