"""The base's promises in a real Docker engine: the CA trust contract of
`ensure_ca_trust.sh`, `docker stop` through the stop signal, a non-root service, and an inventory
that scanners can check against the image."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import tomllib
from docker import DockerClient
from docker.models.images import Image

from integration.checkouts import Checkout, ImageTarget
from integration.containers import (
    CA_DIR,
    HEALTHZ_SCRIPT,
    MARKER,
    MARKER_COMMAND,
    assert_stopped_by_the_garbage_ca,
    exec_python,
    run_to_exit,
    run_with_a_garbage_ca,
    running_container,
    wait_for_log,
)

# The module-scoped fixture that loads every built image into the engine, shared, not copied.
from integration.test_package_and_run import API, WORKER, loaded_images  # noqa: F401

TLS_DIR = "/run/tls"
ESB_UID = "10001"
# `docker stop -t 30`: a service that ignores its stop signal is SIGKILLed after 30 s, exit 137.
STOP_TIMEOUT_S = 30
SIGKILL_STATUS = 137

# Starts an HTTPS server on loopback with the mounted server certificate, then asks it with
# Python's default SSL context (no cafile: only the trust the entrypoint exported) and with
# `openssl s_client -verify_return_error`. Prints a JSON report; failures are in it.
TLS_SCRIPT = r"""
import http.server, json, ssl, subprocess, threading, urllib.request

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello over verified tls"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/run/tls/server.crt", "/run/tls/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
port = server.server_address[1]
threading.Thread(target=server.serve_forever, daemon=True).start()

report = {}
try:
    with urllib.request.urlopen(f"https://localhost:{port}/", timeout=10) as response:
        report["python"] = {"ok": True, "body": response.read().decode()}
except Exception as error:
    report["python"] = {"ok": False, "error": repr(error)}
s_client = subprocess.run(
    ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
     "-verify_hostname", "localhost", "-verify_return_error"],
    input="", capture_output=True, text=True, timeout=30,
)
report["openssl"] = {
    "status": s_client.returncode, "stdout": s_client.stdout[-3000:], "stderr": s_client.stderr[-3000:],
}
server.shutdown()
print(json.dumps(report))
"""

# Times `python -c pass` inside one container.
STARTUP_SCRIPT = r"""
import json, subprocess, sys, time
runs = []
for _ in range(20):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    runs.append(time.perf_counter() - start)
runs.sort()
print(json.dumps({"python": sys.executable, "runs": len(runs), "min_s": runs[0],
                  "median_s": runs[len(runs) // 2], "mean_s": sum(runs) / len(runs)}))
"""


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A root CA and a server certificate for localhost/127.0.0.1 it signed, made on the host.
    Readable by everyone: the services run as uid 10001, not as the test's user."""
    directory = tmp_path_factory.mktemp("tls")
    directory.chmod(0o755)
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=esb integration test root CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    tls = directory / "tls"
    tls.mkdir(mode=0o755)
    for name in ("server.crt", "server.key"):
        (tls / name).write_bytes((directory / name).read_bytes())
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"ca": directory / "ca.crt", "tls": tls}


def ca_volume(ca: Path) -> dict[str, dict[str, str]]:
    return {str(ca): {"bind": f"{CA_DIR}/ca.crt", "mode": "ro"}}


def test_required_trust_with_a_garbage_file_stops_before_the_command(
    loaded_images: dict[str, Image], docker_client: DockerClient, tmp_path: Path
) -> None:
    result = run_with_a_garbage_ca(docker_client, loaded_images[API].id, tmp_path)
    assert_stopped_by_the_garbage_ca(result)


def test_required_trust_with_a_ca_gives_verified_tls_inside_the_container(
    loaded_images: dict[str, Image], docker_client: DockerClient, tls_files: dict[str, Path]
) -> None:
    tls_volume = {str(tls_files["tls"]): {"bind": TLS_DIR, "mode": "ro"}}
    result = run_to_exit(
        docker_client,
        loaded_images[API].id,
        ["python", "-c", TLS_SCRIPT],
        environment={"REQUIRE_CA_TRUST": "true"},
        volumes={**ca_volume(tls_files["ca"]), **tls_volume},
    )
    assert result.status == 0, result.report()
    report = json.loads(result.stdout)
    assert report["python"] == {"ok": True, "body": "hello over verified tls"}, result.report()
    assert report["openssl"]["status"] == 0, result.report()
    assert re.search(
        r"Verif\w+( return code)?: (0 \(ok\)|OK)", report["openssl"]["stdout"]
    ), result.report()

    # The same client without the CA: the handshake fails, so the success above proves the trust.
    untrusted = run_to_exit(
        docker_client, loaded_images[API].id, ["python", "-c", TLS_SCRIPT], volumes=tls_volume
    )
    assert untrusted.status == 0, untrusted.report()
    untrusted_report = json.loads(untrusted.stdout)
    assert untrusted_report["python"]["ok"] is False, untrusted.report()
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted_report["python"]["error"], untrusted.report()
    assert untrusted_report["openssl"]["status"] != 0, untrusted.report()


def test_optional_trust_without_a_ca_warns_and_runs_the_command(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    result = run_to_exit(docker_client, loaded_images[API].id, MARKER_COMMAND)
    assert result.status == 0, result.report()
    assert MARKER in result.stdout, result.report()
    assert (
        f"ensure_ca_trust: warning: no usable root CA in SSL_CERT_DIR={CA_DIR}" in result.stderr
    ), result.report()


def test_docker_stop_ends_the_api_through_its_stop_signal(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    image = loaded_images[API]
    assert image.attrs["Config"].get("StopSignal") == "SIGINT", image.attrs["Config"]
    with running_container(docker_client, image.id) as container:
        logs = wait_for_log(container, "Uvicorn running on")
        assert "Uvicorn running on" in logs, logs
        container.stop(timeout=STOP_TIMEOUT_S)
        status = container.wait(timeout=60)["StatusCode"]
        logs = container.logs().decode(errors="replace")
    assert status != SIGKILL_STATUS, f"killed after {STOP_TIMEOUT_S} s:\n{logs}"
    assert "Shutting down" in logs, logs
    assert "Finished server process" in logs, logs


def test_docker_stop_ends_the_worker_through_its_stop_signal(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    with running_container(docker_client, loaded_images[WORKER].id) as container:
        logs = wait_for_log(container, "worker_started")
        assert "worker_started" in logs, logs
        container.stop(timeout=STOP_TIMEOUT_S)
        status = container.wait(timeout=60)["StatusCode"]
        logs = container.logs().decode(errors="replace")
    assert status != SIGKILL_STATUS, f"killed after {STOP_TIMEOUT_S} s:\n{logs}"
    assert "worker_stopped" in logs, logs


def process_uids(container) -> list[str]:  # type: ignore[no-untyped-def]
    exit_code, output = container.exec_run(["cat", "/proc/1/status"])
    assert exit_code == 0, output
    (uid_line,) = [line for line in output.decode().splitlines() if line.startswith("Uid:")]
    return uid_line.split()[1:]


def healthz(container) -> dict:  # type: ignore[no-untyped-def,type-arg]
    output = exec_python(container, HEALTHZ_SCRIPT)
    status, body = output.splitlines()
    assert status == "200", output
    return json.loads(body)


def test_api_runs_as_non_root_and_serves(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    with running_container(docker_client, loaded_images[API].id) as container:
        assert healthz(container) == {"status": "ok"}
        # Real, effective, saved and filesystem uid of the service, PID 1.
        assert process_uids(container) == [ESB_UID] * 4
        exit_code, output = container.exec_run(["id", "-u"])
        assert (exit_code, output.decode().strip()) == (0, ESB_UID)


def test_api_on_a_read_only_root_with_required_trust_starts_and_serves(
    loaded_images: dict[str, Image], docker_client: DockerClient, tls_files: dict[str, Path]
) -> None:
    with running_container(
        docker_client,
        loaded_images[API].id,
        environment={"REQUIRE_CA_TRUST": "true"},
        volumes=ca_volume(tls_files["ca"]),
        read_only=True,
        tmpfs={"/tmp": ""},
    ) as container:
        assert healthz(container) == {"status": "ok"}, container.logs().decode()
        assert process_uids(container) == [ESB_UID] * 4
        # The trust the service got was written to the tmpfs, with the mounted CA in it.
        exit_code, bundle = container.exec_run(["cat", "/tmp/esb-trust/ca-bundle.crt"])
        assert exit_code == 0, bundle
        ca_pem = tls_files["ca"].read_text().strip()
        assert ca_pem in bundle.decode(), "the mounted CA is not in the service's bundle"
        # And the root really is read-only.
        exit_code, _ = container.exec_run(["touch", "/etc/esb-write-test"])
        assert exit_code != 0


def uv_lock_versions(lock: Path) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text())["package"]}


def test_api_inventory_lists_debian_and_python_packages_found_in_the_image(
    built_checkout: Checkout,
    image_targets: list[ImageTarget],
    loaded_images: dict[str, Image],
    docker_client: DockerClient,
) -> None:
    (target,) = [t for t in image_targets if t.address == API]
    prefix = target.output_prefix(built_checkout.dist)
    inventory = json.loads(prefix.with_name(f"{prefix.name}.inventory.json").read_text())
    by_name = {(entry["kind"], entry["name"]): entry for entry in inventory}

    for name in ("libc6", "python3.11"):
        entry = by_name.get(("deb", name))
        assert entry and entry["version"], f"{name} missing or without a version: {entry}"
        assert entry["location"] == "/var/lib/dpkg/status", entry
    locked = uv_lock_versions(built_checkout.root / "services/api/uv.lock")
    for name in ("starlette", "uvicorn", "pydantic"):
        entry = by_name.get(("python", name))
        assert entry, f"{name} missing from the inventory"
        assert entry["version"] == locked[name], (entry, locked[name])

    libc6 = by_name[("deb", "libc6")]["version"]
    starlette = by_name[("python", "starlette")]["version"]
    metadata = f"/.venv/lib/python3.11/site-packages/starlette-{starlette}.dist-info/METADATA"
    # What a scanner reads in the image: dpkg's status stanza for libc6, and the dist-info.
    script = (
        "import email, pathlib, sys\n"
        "stanzas = pathlib.Path('/var/lib/dpkg/status').read_text().split('\\n\\n')\n"
        "libc6 = [s for s in stanzas if s.startswith('Package: libc6\\n')]\n"
        "print(libc6[0] if libc6 else 'NO LIBC6')\n"
        "print('=====')\n"
        "m = email.message_from_string(pathlib.Path(sys.argv[1]).read_text())\n"
        "print(m['Name'], m['Version'])\n"
    )
    result = run_to_exit(docker_client, loaded_images[API].id, ["python", "-c", script, metadata])
    assert result.status == 0, result.report()
    stanza, _, dist_info = result.stdout.partition("=====")
    assert "Status: install ok installed" in stanza, result.report()
    assert f"Version: {libc6}" in stanza, result.report()
    assert dist_info.split() == ["starlette", starlette], result.report()


def test_measure_python_start_up_in_the_api_container(
    loaded_images: dict[str, Image], docker_client: DockerClient
) -> None:
    """Measures, does not assert: `python -c pass`, 20 runs inside one container."""
    result = run_to_exit(docker_client, loaded_images[API].id, ["python", "-c", STARTUP_SCRIPT])
    assert result.status == 0, result.report()
    measured = json.loads(result.stdout)
    print(
        f"\npython -c pass in {API} ({measured['python']}, {measured['runs']} runs): "
        f"median {measured['median_s'] * 1000:.1f} ms, min {measured['min_s'] * 1000:.1f} ms, "
        f"mean {measured['mean_s'] * 1000:.1f} ms"
    )
