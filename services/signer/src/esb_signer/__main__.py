"""Sign JSON payloads read line by line from stdin: `python -m esb_signer`.

Each input line is one JSON payload; each output line is its signed envelope. Lines that
are not JSON are reported on stderr and skipped, and the exit status is then 1. The
signing key comes from `--key-file` or `ESB_SIGNER_KEY_FILE`; without one an ephemeral
key is generated. Either way its public key is announced on stderr at start-up.

`--self-test` signs and verifies a payload with the key, checks that tampering is
detected, and exits 0 if all of that holds.
"""

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from esb_signer.envelope import (
    InvalidEnvelope,
    b64url_encode,
    key_id,
    raw_public_key,
    sign,
    verify,
)
from esb_signer.keys import load_private_key

SELF_TEST_PAYLOAD = {
    "event": "self-test",
    "values": [1, 2.5, None, True],
    "text": "héllo",
}


def write_line(stream: BinaryIO, document: object) -> None:
    stream.write(orjson.dumps(document) + b"\n")
    stream.flush()


def sign_stream(
    private_key: Ed25519PrivateKey, source: BinaryIO, sink: BinaryIO, errors: BinaryIO
) -> int:
    """Sign each JSON line of `source` into `sink`; return how many were rejected."""
    rejected = 0
    for line_number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            payload = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            rejected += 1
            write_line(
                errors, {"event": "rejected", "line": line_number, "error": str(error)}
            )
            continue
        write_line(sink, sign(payload, private_key))
    return rejected


def _verifies(envelope: object, public_key: Ed25519PublicKey) -> bool:
    try:
        verify(envelope, public_key)
    except InvalidEnvelope:
        return False
    return True


def self_test(private_key: Ed25519PrivateKey) -> list[str]:
    """Return the checks that failed; none means signing and verification work."""
    public_key = private_key.public_key()
    # Through bytes and back, as a verifier elsewhere receives it.
    envelope = orjson.loads(orjson.dumps(sign(SELF_TEST_PAYLOAD, private_key)))
    tampered = {**envelope, "payload": {**SELF_TEST_PAYLOAD, "text": "hello"}}
    other_public_key = Ed25519PrivateKey.generate().public_key()
    checks = {
        "a fresh envelope verifies": _verifies(envelope, public_key),
        "a tampered payload is rejected": not _verifies(tampered, public_key),
        "another key rejects the envelope": not _verifies(envelope, other_public_key),
    }
    return [check for check, held in checks.items() if not held]


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m esb_signer",
        description="Sign JSON payloads read line by line from stdin.",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=os.environ.get("ESB_SIGNER_KEY_FILE") or None,
        help="PEM Ed25519 private key (default: $ESB_SIGNER_KEY_FILE, else ephemeral)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check signing and verification, then exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str], stdin: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> int:
    arguments = parse_arguments(argv)
    try:
        private_key = (
            load_private_key(arguments.key_file)
            if arguments.key_file is not None
            else Ed25519PrivateKey.generate()
        )
    except (OSError, ValueError) as error:
        write_line(stderr, {"event": "key_unusable", "error": str(error)})
        return 2
    public_key = private_key.public_key()
    write_line(
        stderr,
        {
            "event": "signer_ready",
            "ephemeral_key": arguments.key_file is None,
            "key_id": key_id(public_key),
            "public_key": b64url_encode(raw_public_key(public_key)),
        },
    )
    if arguments.self_test:
        failures = self_test(private_key)
        write_line(
            stdout,
            {"self_test": "failed" if failures else "ok", "failed_checks": failures},
        )
        return 1 if failures else 0
    return 1 if sign_stream(private_key, stdin, stdout, stderr) else 0


def exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    # As PID 1 in a container the process has no default action for SIGTERM, so
    # without a handler `docker stop` would wait out its timeout and then kill.
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    sys.exit(main(sys.argv[1:], sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer))
