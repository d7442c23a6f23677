from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trust_testing import ENTRYPOINT, CertFactory, TlsServer, clean_env, run_script


def trust_env(ca_dir: Path, trust_dir: Path, **env: str) -> dict[str, str]:
    return clean_env(SSL_CERT_DIR=str(ca_dir), ESB_TRUST_DIR=str(trust_dir), **env)


def test_without_a_command_fails_clearly(ca_dir: Path, trust_dir: Path) -> None:
    result = run_script([ENTRYPOINT], trust_env(ca_dir, trust_dir))
    assert result.returncode == 2
    assert "entrypoint.sh: no command given" in result.stderr
    assert result.stdout == ""


def test_command_replaces_the_entrypoint_process(ca_dir: Path, trust_dir: Path) -> None:
    process = subprocess.Popen(
        [ENTRYPOINT, "sh", "-c", 'echo "$$"'],
        env=trust_env(ca_dir, trust_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert int(stdout) == process.pid


@pytest.mark.parametrize("status", [0, 3, 42])
def test_exit_status_of_the_command_is_the_containers(
    ca_dir: Path, trust_dir: Path, status: int
) -> None:
    result = run_script([ENTRYPOINT, "sh", "-c", f"exit {status}"], trust_env(ca_dir, trust_dir))
    assert result.returncode == status


def test_arguments_reach_the_command_unchanged(ca_dir: Path, trust_dir: Path) -> None:
    args = ["two words", "", "$HOME", "*", "--flag=a;b"]
    result = run_script([ENTRYPOINT, "printf", "[%s]\n", *args], trust_env(ca_dir, trust_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(f"[{arg}]\n" for arg in args)


def test_stop_signal_reaches_the_command(ca_dir: Path, trust_dir: Path) -> None:
    process = subprocess.Popen(
        [ENTRYPOINT, "sleep", "60"],
        env=trust_env(ca_dir, trust_dir),
        stderr=subprocess.DEVNULL,
    )
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        deadline = time.monotonic() + 30
        while not cmdline.read_bytes().startswith(b"sleep\0"):
            assert time.monotonic() < deadline, "the entrypoint never exec'd the command"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()


def test_required_trust_missing_stops_before_the_service(
    tmp_path: Path, ca_dir: Path, trust_dir: Path
) -> None:
    started = tmp_path / "service-started"
    result = run_script(
        [ENTRYPOINT, "touch", started], trust_env(ca_dir, trust_dir, REQUIRE_CA_TRUST="true")
    )
    assert result.returncode == 1
    assert "REQUIRE_CA_TRUST=true and no usable root CA" in result.stderr
    assert not started.exists()


def test_service_gets_the_trust_environment(
    certs: CertFactory, ca_dir: Path, trust_dir: Path
) -> None:
    shutil.copy(certs.root_ca("ESB Corp Root CA").cert, ca_dir / "corp.crt")
    names = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"]
    result = run_script(
        [ENTRYPOINT, "sh", "-c", "; ".join(f'echo "${name}"' for name in names)],
        trust_env(ca_dir, trust_dir, REQUIRE_CA_TRUST="true"),
    )
    assert result.returncode == 0, result.stderr
    bundle = str(trust_dir / "ca-bundle.crt")
    assert result.stdout.splitlines() == [bundle, bundle, bundle, str(trust_dir / "certs")]


def test_service_trusts_a_server_signed_by_the_mounted_ca(
    tls_server: TlsServer, ca_dir: Path, trust_dir: Path
) -> None:
    shutil.copy(tls_server.ca.cert, ca_dir / "esb-root.crt")
    code = (
        "import sys, urllib.request;"
        "print(urllib.request.urlopen(sys.argv[1]).read().decode(), end='')"
    )
    result = run_script(
        [ENTRYPOINT, sys.executable, "-c", code, tls_server.url],
        trust_env(ca_dir, trust_dir, REQUIRE_CA_TRUST="true"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trusted\n"


def test_optional_trust_missing_starts_the_service_without_ssl_cert_dir(
    tmp_path: Path, trust_dir: Path
) -> None:
    result = run_script(
        [ENTRYPOINT, "sh", "-c", 'echo "${SSL_CERT_DIR-unset}"'],
        trust_env(tmp_path / "not-mounted", trust_dir),
    )
    assert result.returncode == 0, result.stderr
    assert "warning: no usable root CA" in result.stderr
    assert result.stdout == "unset\n"


def test_finds_ensure_ca_trust_beside_itself_when_run_through_path(
    tmp_path: Path, ca_dir: Path, trust_dir: Path
) -> None:
    env = trust_env(ca_dir, trust_dir, REQUIRE_CA_TRUST="true")
    env["PATH"] = f"{ENTRYPOINT.parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["entrypoint.sh", "true"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    # Reaching the trust check's verdict proves the entrypoint found and ran it.
    assert result.returncode == 1
    assert "REQUIRE_CA_TRUST=true and no usable root CA" in result.stderr
