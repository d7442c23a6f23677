from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from trust_testing import (
    ENSURE_CA_TRUST,
    SYSTEM_BUNDLE,
    CertFactory,
    TlsServer,
    clean_env,
    run_script,
    run_with_exports,
)


def ensure_ca_trust(**env: str) -> subprocess.CompletedProcess[str]:
    return run_script(["bash", ENSURE_CA_TRUST], clean_env(**env))


def expected_exports(trust_dir: Path) -> str:
    bundle = trust_dir / "ca-bundle.crt"
    return (
        f"export SSL_CERT_FILE={bundle}\n"
        f"export REQUESTS_CA_BUNDLE={bundle}\n"
        f"export CURL_CA_BUNDLE={bundle}\n"
        f"export SSL_CERT_DIR={trust_dir / 'certs'}\n"
    )


def write_garbage(certs: CertFactory, ca_dir: Path) -> str:
    (ca_dir / "notes.txt").write_text("this is not a certificate\n")
    return f"rejected {ca_dir / 'notes.txt'}: no PEM certificate (-----BEGIN CERTIFICATE-----)"


def write_corrupt_pem(certs: CertFactory, ca_dir: Path) -> str:
    (ca_dir / "corrupt.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIBzzCCAXWgAwIBAgIU\n-----END CERTIFICATE-----\n"
    )
    return f"rejected {ca_dir / 'corrupt.pem'}: not a readable X.509 certificate"


def write_der(certs: CertFactory, ca_dir: Path) -> str:
    ca = certs.root_ca("DER Root CA")
    der = subprocess.run(
        ["openssl", "x509", "-in", str(ca.cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    (ca_dir / "root.der").write_bytes(der)
    return f"rejected {ca_dir / 'root.der'}: no PEM certificate"


def write_expired_ca(certs: CertFactory, ca_dir: Path) -> str:
    ca = certs.dated_root_ca(
        "Expired Root CA", not_before="20200101000000Z", not_after="20210101000000Z"
    )
    shutil.copy(ca.cert, ca_dir / "expired.pem")
    return (
        f"rejected {ca_dir / 'expired.pem'} [CN=Expired Root CA]: "
        "expired on Jan  1 00:00:00 2021 GMT"
    )


def write_future_ca(certs: CertFactory, ca_dir: Path) -> str:
    ca = certs.dated_root_ca(
        "Future Root CA", not_before="20990101000000Z", not_after="21000101000000Z"
    )
    shutil.copy(ca.cert, ca_dir / "future.pem")
    return (
        f"rejected {ca_dir / 'future.pem'} [CN=Future Root CA]: "
        "fails verification: certificate is not yet valid"
    )


def write_leaf(certs: CertFactory, ca_dir: Path) -> str:
    shutil.copy(certs.self_signed_leaf("service.example").cert, ca_dir / "leaf.pem")
    return f"rejected {ca_dir / 'leaf.pem'} [CN=service.example]: not a CA certificate"


def write_server_cert(certs: CertFactory, ca_dir: Path) -> str:
    shutil.copy(certs.server_cert(certs.root_ca("Unmounted Root CA")).cert, ca_dir / "server.pem")
    return f"rejected {ca_dir / 'server.pem'} [CN=127.0.0.1]: not a CA certificate"


def write_intermediate(certs: CertFactory, ca_dir: Path) -> str:
    intermediate = certs.intermediate_ca(certs.root_ca("Unmounted Root CA"), "Issuing CA")
    shutil.copy(intermediate.cert, ca_dir / "intermediate.pem")
    return (
        f"rejected {ca_dir / 'intermediate.pem'} [CN=Issuing CA]: "
        "not self-signed (issued by CN=Unmounted Root CA)"
    )


def write_directory(certs: CertFactory, ca_dir: Path) -> str:
    (ca_dir / "nested").mkdir()
    shutil.copy(certs.root_ca("Nested Root CA").cert, ca_dir / "nested" / "root.pem")
    return f"rejected {ca_dir / 'nested'}: a directory (subdirectories are not searched)"


def write_broken_link(certs: CertFactory, ca_dir: Path) -> str:
    (ca_dir / "gone.pem").symlink_to(ca_dir / "missing.pem")
    return f"rejected {ca_dir / 'gone.pem'}: a broken symbolic link"


REJECTED_FILES = [
    pytest.param(write_garbage, id="garbage"),
    pytest.param(write_corrupt_pem, id="corrupt-pem"),
    pytest.param(write_der, id="der-not-pem"),
    pytest.param(write_expired_ca, id="expired-ca"),
    pytest.param(write_future_ca, id="not-yet-valid-ca"),
    pytest.param(write_leaf, id="self-signed-leaf"),
    pytest.param(write_server_cert, id="server-cert"),
    pytest.param(write_intermediate, id="intermediate-ca"),
    pytest.param(write_directory, id="subdirectory"),
    pytest.param(write_broken_link, id="broken-link"),
]


def assert_refused(result: subprocess.CompletedProcess[str], ca_dir: Path, trust_dir: Path) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert (
        f"error: REQUIRE_CA_TRUST=true and no usable root CA in SSL_CERT_DIR={ca_dir}: "
        "the service must not start"
    ) in result.stderr
    assert not trust_dir.exists()


def test_required_and_missing_dir(tmp_path: Path, trust_dir: Path) -> None:
    missing = tmp_path / "not-mounted"
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(missing), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert_refused(result, missing, trust_dir)
    assert f"SSL_CERT_DIR={missing} does not exist" in result.stderr


def test_required_and_empty_dir(ca_dir: Path, trust_dir: Path) -> None:
    (ca_dir / ".hidden.pem").write_text("hidden files are not searched")
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert_refused(result, ca_dir, trust_dir)
    assert f"SSL_CERT_DIR={ca_dir} is empty" in result.stderr


@pytest.mark.parametrize("write_rejected", REJECTED_FILES)
def test_required_and_only_unusable_files(
    certs: CertFactory,
    ca_dir: Path,
    trust_dir: Path,
    write_rejected: Callable[[CertFactory, Path], str],
) -> None:
    reason = write_rejected(certs, ca_dir)
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert_refused(result, ca_dir, trust_dir)
    assert f"ensure_ca_trust: {reason}" in result.stderr


def test_reports_one_line_per_rejected_file(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    reasons = [write(certs, ca_dir) for write in (write_garbage, write_expired_ca, write_leaf)]
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert_refused(result, ca_dir, trust_dir)
    rejected_lines = [line for line in result.stderr.splitlines() if " rejected " in line]
    assert len(rejected_lines) == 3
    for reason in reasons:
        assert any(reason in line for line in rejected_lines), reason


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_required_values(ca_dir: Path, trust_dir: Path, value: str) -> None:
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST=value, ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 1


def test_unrecognised_require_value_fails_closed(ca_dir: Path, trust_dir: Path) -> None:
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="ture", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 1
    assert "REQUIRE_CA_TRUST=ture is neither true nor false" in result.stderr


def test_valid_ca_is_added_to_the_system_bundle(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    ca = certs.root_ca("ESB Corp Root CA")
    shutil.copy(ca.cert, ca_dir / "corp.crt")
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_exports(trust_dir)
    assert f"trusting {ca_dir / 'corp.crt'}: CN=ESB Corp Root CA" in result.stderr
    bundle = (trust_dir / "ca-bundle.crt").read_text()
    assert bundle.startswith(SYSTEM_BUNDLE.read_text())
    assert bundle.endswith(f"# {ca_dir / 'corp.crt'}: CN=ESB Corp Root CA\n{ca.pem()}")
    subject_hash = subprocess.run(
        ["openssl", "x509", "-noout", "-subject_hash", "-in", str(ca.cert)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert sorted(p.name for p in (trust_dir / "certs").iterdir()) == [f"{subject_hash}.0"]
    assert (trust_dir / "certs" / f"{subject_hash}.0").read_text() == ca.pem()
    # Readable by a service that drops privileges, writable by no one else.
    assert (trust_dir / "ca-bundle.crt").stat().st_mode & 0o777 == 0o644
    assert (trust_dir / "certs").stat().st_mode & 0o777 == 0o755
    assert trust_dir.stat().st_mode & 0o777 == 0o755
    assert not [p for p in trust_dir.iterdir() if p.name.startswith(".")]


def test_usable_cas_are_trusted_next_to_rejected_ones(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    expired_reason = write_expired_ca(certs, ca_dir)
    leaf_reason = write_leaf(certs, ca_dir)
    shutil.copy(certs.root_ca("Good Root CA").cert, ca_dir / "good.pem")
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 0, result.stderr
    assert expired_reason in result.stderr
    assert leaf_reason in result.stderr
    assert len(list((trust_dir / "certs").iterdir())) == 1


def test_bundle_file_contributes_its_usable_certificates(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    first = certs.root_ca("First Root CA")
    expired = certs.dated_root_ca(
        "Expired Root CA", not_before="20200101000000Z", not_after="20210101000000Z"
    )
    second = certs.root_ca("Second Root CA")
    # CRLF line ends, as exported by Windows hosts.
    bundle_text = first.pem() + expired.pem() + second.pem()
    (ca_dir / "bundle.pem").write_bytes(bundle_text.replace("\n", "\r\n").encode())
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"rejected {ca_dir / 'bundle.pem'} (certificate 2 of 3) [CN=Expired Root CA]: expired"
    ) in result.stderr
    assert f"trusting {ca_dir / 'bundle.pem'}: 2 root CAs" in result.stderr
    trusted = sorted(p.read_text() for p in (trust_dir / "certs").iterdir())
    assert trusted == sorted([first.pem(), second.pem()])


def test_bundle_file_with_one_usable_certificate_names_it(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    good = certs.root_ca("Good Root CA")
    expired = certs.dated_root_ca(
        "Expired Root CA", not_before="20200101000000Z", not_after="20210101000000Z"
    )
    (ca_dir / "bundle.pem").write_text(good.pem() + expired.pem())
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 0, result.stderr
    assert f"trusting {ca_dir / 'bundle.pem'}: CN=Good Root CA" in result.stderr


def test_same_ca_mounted_twice_is_trusted_once(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    ca = certs.root_ca("Twice Root CA")
    shutil.copy(ca.cert, ca_dir / "a.pem")
    (ca_dir / "b.pem").symlink_to(ca_dir / "a.pem")
    result = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 0, result.stderr
    assert f"skipped {ca_dir / 'b.pem'}: its certificates were already read" in result.stderr
    assert (trust_dir / "ca-bundle.crt").read_text().count(ca.pem()) == 1
    assert len(list((trust_dir / "certs").iterdir())) == 1


def test_running_again_replaces_the_trust(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    old = certs.root_ca("Old Root CA")
    new = certs.root_ca("New Root CA")
    env = dict(SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir))
    shutil.copy(old.cert, ca_dir / "ca.pem")
    assert ensure_ca_trust(**env).returncode == 0
    shutil.copy(new.cert, ca_dir / "ca.pem")
    assert ensure_ca_trust(**env).returncode == 0
    bundle = (trust_dir / "ca-bundle.crt").read_text()
    assert new.pem() in bundle
    assert old.pem() not in bundle
    assert [p.read_text() for p in (trust_dir / "certs").iterdir()] == [new.pem()]


def test_trusting_its_own_output_again_is_stable(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    """A second run in the service's environment, SSL_CERT_DIR re-pointed, finds the same CAs."""
    ca = certs.root_ca("Stable Root CA")
    shutil.copy(ca.cert, ca_dir / "ca.pem")
    first = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    second = ensure_ca_trust(
        SSL_CERT_DIR=str(trust_dir / "certs"),
        REQUIRE_CA_TRUST="true",
        ESB_TRUST_DIR=str(trust_dir),
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert [p.read_text() for p in (trust_dir / "certs").iterdir()] == [ca.pem()]


def _run_urllib(server: TlsServer) -> list[str]:
    code = (
        "import sys, urllib.request;"
        "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end='')"
    )
    return [sys.executable, "-c", code, server.url]


def _run_requests(server: TlsServer) -> list[str]:
    code = "import sys, requests;" "print(requests.get(sys.argv[1], timeout=10).text, end='')"
    return [sys.executable, "-c", code, server.url]


def _run_openssl(server: TlsServer) -> list[str]:
    address = f"127.0.0.1:{server.port}"
    verify = ["-verify_return_error", "-verify_ip", "127.0.0.1"]
    return ["openssl", "s_client", "-brief", "-connect", address, *verify]


def _run_curl(server: TlsServer) -> list[str]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return ["curl", "--fail", "--silent", "--show-error", server.url]


@pytest.mark.parametrize(
    "client",
    [
        pytest.param(_run_urllib, id="python-ssl-urllib"),
        pytest.param(_run_requests, id="python-requests-certifi"),
        pytest.param(_run_openssl, id="openssl-s_client"),
        pytest.param(_run_curl, id="curl"),
    ],
)
def test_clients_trust_a_server_signed_by_the_mounted_ca(
    tls_server: TlsServer,
    ca_dir: Path,
    trust_dir: Path,
    client: Callable[[TlsServer], list[str]],
) -> None:
    shutil.copy(tls_server.ca.cert, ca_dir / "esb-root.crt")
    trust = ensure_ca_trust(
        SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert trust.returncode == 0, trust.stderr
    argv = client(tls_server)
    # The client's own packages (requests, certifi), as in the service's venv.
    env = clean_env(PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    untrusted = run_with_exports("", argv, env)
    assert untrusted.returncode != 0, "the server must not be trusted without the mounted CA"

    trusted = run_with_exports(trust.stdout, argv, env)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    if client is not _run_openssl:
        assert trusted.stdout == "trusted\n"


@pytest.mark.parametrize("value", [None, "false", "0", "no", ""])
def test_optional_trust_warns_and_continues(
    tmp_path: Path, trust_dir: Path, value: str | None
) -> None:
    missing = tmp_path / "not-mounted"
    env = dict(SSL_CERT_DIR=str(missing), ESB_TRUST_DIR=str(trust_dir))
    if value is not None:
        env["REQUIRE_CA_TRUST"] = value
    result = ensure_ca_trust(**env)
    assert result.returncode == 0, result.stderr
    assert f"warning: no usable root CA in SSL_CERT_DIR={missing}" in result.stderr
    # httpx would trust only SSL_CERT_DIR, an empty mount, if it stayed set.
    assert result.stdout == "unset SSL_CERT_DIR\n"
    assert not trust_dir.exists()


def test_default_ca_dir(trust_dir: Path) -> None:
    if Path("/etc/esb/ca-certificates").exists():
        pytest.skip("/etc/esb/ca-certificates exists on this machine")
    result = ensure_ca_trust(ESB_TRUST_DIR=str(trust_dir))
    assert result.returncode == 0, result.stderr
    assert "SSL_CERT_DIR=/etc/esb/ca-certificates does not exist" in result.stderr
    assert result.stdout == ""


def test_found_ca_that_cannot_be_installed_fails_even_when_optional(
    certs: CertFactory, ca_dir: Path
) -> None:
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    result = ensure_ca_trust(SSL_CERT_DIR=str(ca_dir), ESB_TRUST_DIR="/dev/null/esb-trust")
    assert result.returncode == 1
    assert "cannot create ESB_TRUST_DIR=/dev/null/esb-trust" in result.stderr
    assert "mount a tmpfs at /tmp" in result.stderr
    assert result.stdout == ""


def test_trust_dir_must_be_absolute(certs: CertFactory, ca_dir: Path) -> None:
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    result = ensure_ca_trust(SSL_CERT_DIR=str(ca_dir), ESB_TRUST_DIR="relative/trust")
    assert result.returncode == 1
    assert "ESB_TRUST_DIR=relative/trust is not an absolute path" in result.stderr


def test_refuses_a_trust_dir_behind_a_symlink(
    certs: CertFactory, ca_dir: Path, tmp_path: Path
) -> None:
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "trust").symlink_to(tmp_path / "elsewhere")
    result = ensure_ca_trust(SSL_CERT_DIR=str(ca_dir), ESB_TRUST_DIR=str(tmp_path / "trust"))
    assert result.returncode == 1
    assert "is a symbolic link or belongs to another user" in result.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_arguments_are_a_usage_error() -> None:
    result = run_script(["bash", ENSURE_CA_TRUST, "/etc/esb/ca-certificates"], clean_env())
    assert result.returncode == 2
    assert "usage: ensure_ca_trust.sh (no arguments" in result.stderr


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")


def ensure_ca_trust_as_nobody(shared_tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # A copy that nobody can read: the test sandbox is private to this user.
    script = shared_tmp / "ensure_ca_trust.sh"
    shutil.copy(ENSURE_CA_TRUST, script)
    script.chmod(0o755)
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return run_script([*setpriv, "bash", str(script)], clean_env(**env))


@needs_root
def test_non_root_user_writes_only_its_trust_dir(certs: CertFactory, shared_tmp: Path) -> None:
    ca_dir = shared_tmp / "mounted-cas"
    ca_dir.mkdir()
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    (ca_dir / "ca.pem").chmod(0o644)
    # Like /tmp: anyone may create entries, nobody may replace another user's.
    writable = shared_tmp / "tmp"
    writable.mkdir()
    writable.chmod(0o1777)
    trust_dir = writable / "esb-trust"
    result = ensure_ca_trust_as_nobody(
        shared_tmp, SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(trust_dir)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_exports(trust_dir)
    assert trust_dir.stat().st_uid == 65534
    assert (trust_dir / "ca-bundle.crt").stat().st_uid == 65534


@needs_root
def test_non_root_user_refuses_a_trust_dir_of_another_user(
    certs: CertFactory, shared_tmp: Path
) -> None:
    ca_dir = shared_tmp / "mounted-cas"
    ca_dir.mkdir()
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    (ca_dir / "ca.pem").chmod(0o644)
    planted = shared_tmp / "esb-trust"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    result = ensure_ca_trust_as_nobody(
        shared_tmp, SSL_CERT_DIR=str(ca_dir), REQUIRE_CA_TRUST="true", ESB_TRUST_DIR=str(planted)
    )
    assert result.returncode == 1
    assert f"ESB_TRUST_DIR={planted} is a symbolic link or belongs to another user" in result.stderr
    assert list(planted.iterdir()) == []


@needs_root
def test_unreadable_mount_is_reported(certs: CertFactory, shared_tmp: Path) -> None:
    ca_dir = shared_tmp / "mounted-cas"
    ca_dir.mkdir()
    shutil.copy(certs.root_ca("Root CA").cert, ca_dir / "ca.pem")
    (ca_dir / "ca.pem").chmod(0o600)
    result = ensure_ca_trust_as_nobody(
        shared_tmp,
        SSL_CERT_DIR=str(ca_dir),
        REQUIRE_CA_TRUST="true",
        ESB_TRUST_DIR=str(shared_tmp / "trust"),
    )
    assert result.returncode == 1
    assert f"rejected {ca_dir / 'ca.pem'}: not readable by uid 65534" in result.stderr
