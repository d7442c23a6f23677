import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from esb_signer.__main__ import main, self_test
from esb_signer.envelope import b64url_decode, key_id, verify
from esb_signer.keys import load_private_key


def run_main(argv: list[str], stdin: bytes = b"") -> tuple[int, list, list]:
    stdout, stderr = io.BytesIO(), io.BytesIO()
    status = main(argv, io.BytesIO(stdin), stdout, stderr)
    return (
        status,
        [orjson.loads(line) for line in stdout.getvalue().splitlines()],
        [orjson.loads(line) for line in stderr.getvalue().splitlines()],
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signer.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    return path


def test_signs_each_line_with_the_key_from_the_file(key_file: Path) -> None:
    public_key = load_private_key(key_file).public_key()

    status, envelopes, [ready] = run_main(
        ["--key-file", str(key_file)], b'{"n": 1}\n\n[2, "two"]\n"three"\n'
    )

    assert status == 0
    assert [verify(envelope, public_key) for envelope in envelopes] == [
        {"n": 1},
        [2, "two"],
        "three",
    ]
    assert ready["event"] == "signer_ready"
    assert ready["ephemeral_key"] is False
    assert ready["key_id"] == key_id(public_key)


def test_key_file_defaults_to_the_environment(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESB_SIGNER_KEY_FILE", str(key_file))

    _, _, [ready] = run_main([])

    assert ready["key_id"] == key_id(load_private_key(key_file).public_key())


def test_without_a_key_file_an_announced_ephemeral_key_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ESB_SIGNER_KEY_FILE", raising=False)

    status, [envelope], [ready] = run_main([], b'{"ok": true}\n')

    assert status == 0
    assert ready["ephemeral_key"] is True
    announced = Ed25519PublicKey.from_public_bytes(b64url_decode(ready["public_key"]))
    assert verify(envelope, announced) == {"ok": True}


def test_lines_that_are_not_json_are_reported_and_skipped(key_file: Path) -> None:
    status, envelopes, [_, rejected] = run_main(
        ["--key-file", str(key_file)], b'{"n": 1}\n{broken\n{"n": 3}\n'
    )

    assert status == 1
    assert [envelope["payload"] for envelope in envelopes] == [{"n": 1}, {"n": 3}]
    assert rejected["event"] == "rejected"
    assert rejected["line"] == 2


def test_an_encrypted_key_is_unusable(tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")
        )
    )

    status, _, [error] = run_main(["--key-file", str(encrypted)])

    assert status == 2
    assert error["event"] == "key_unusable"


def test_a_non_ed25519_key_is_unusable(tmp_path: Path) -> None:
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(
        generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )

    status, _, [error] = run_main(["--key-file", str(rsa)])

    assert status == 2
    assert "not an Ed25519 private key" in error["error"]


def test_a_missing_key_file_is_unusable(tmp_path: Path) -> None:
    status, _, [error] = run_main(["--key-file", str(tmp_path / "absent.pem")])

    assert status == 2
    assert "No such file" in error["error"]


def test_self_test_passes_with_a_working_key(key_file: Path) -> None:
    assert self_test(load_private_key(key_file)) == []
    assert run_main(["--self-test", "--key-file", str(key_file)])[:2] == (
        0,
        [{"self_test": "ok", "failed_checks": []}],
    )


def test_module_self_test_exits_zero() -> None:
    # The child must import what this process imports, also under a PEX.
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    environ.pop("ESB_SIGNER_KEY_FILE", None)

    completed = subprocess.run(
        [sys.executable, "-m", "esb_signer", "--self-test"],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )

    assert completed.returncode == 0, completed.stderr
    assert orjson.loads(completed.stdout) == {"self_test": "ok", "failed_checks": []}
