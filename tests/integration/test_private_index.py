"""A service whose lock pins a package to a private index: a PEP 503 index on loopback, over
HTTPS with a private CA and basic auth, serving a wheel built here. `esb-lock` and `package`
reach it with credentials given by uv's `UV_INDEX_<NAME>_*` variables, which appear nowhere in
the checkout's outputs, logs or image; without them, `package` says which variables to set."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from docker import DockerClient

from imagetool.oci import OciLayout
from integration.checkouts import Checkout, ImageTarget
from integration.containers import run_to_exit

SERVICE = "services/private"
TARGET = f"{SERVICE}:private"
INDEX_NAME = "esb-test-internal"
USERNAME_VARIABLE = "UV_INDEX_ESB_TEST_INTERNAL_USERNAME"
PASSWORD_VARIABLE = "UV_INDEX_ESB_TEST_INTERNAL_PASSWORD"
USERNAME = "esb-builder"
PASSWORD = "s3cret-token-5f1d9c2b7a"
PACKAGE = "esb-private-greeting"
MODULE = "esb_private_greeting"
WHEEL = f"{MODULE}-1.0.0-py3-none-any.whl"


def record_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel() -> bytes:
    """A pure wheel of a one-module package, as a build backend writes it."""
    files = {
        f"{MODULE}/__init__.py": b'GREETING = "hello from the private index"\n',
        f"{MODULE}-1.0.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0.0\n".encode()
        ),
        f"{MODULE}-1.0.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: esb-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = (
        "".join(
            f"{name},sha256={record_digest(data)},{len(data)}\n" for name, data in files.items()
        )
        + f"{MODULE}-1.0.0.dist-info/RECORD,,\n"
    )
    files[f"{MODULE}-1.0.0.dist-info/RECORD"] = record.encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA, and a certificate it signs for 127.0.0.1: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (
        directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n"
        "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
    )

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca,
        "-days",
        "2",
        "-subj",
        "/CN=esb test private index CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        "/CN=127.0.0.1",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        extensions,
    )
    return ca, cert, key


class PrivateIndex:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.url = f"https://127.0.0.1:{server.server_address[1]}/simple"
        self.requests: list[tuple[str, int]] = []


@pytest.fixture
def private_index(scratch: Path) -> Iterator[tuple[PrivateIndex, Path]]:
    """The index, and a CA bundle (the machine's and the private CA) for `ca_certs_path`."""
    import ssl

    ca, cert, key = make_certificates(scratch)
    wheel = build_wheel()
    sha256 = hashlib.sha256(wheel).hexdigest()
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    pages = {
        "/simple/": f'<a href="/simple/{PACKAGE}/">{PACKAGE}</a>'.encode(),
        f"/simple/{PACKAGE}/": f'<a href="/files/{WHEEL}#sha256={sha256}">{WHEEL}</a>'.encode(),
        f"/files/{WHEEL}": wheel,
    }
    index: PrivateIndex

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
            self.do_GET(send_body=False)

        def do_GET(self, send_body: bool = True) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if not path.endswith("/") and path.startswith("/simple"):
                path += "/"
            if self.headers.get("Authorization") != expected:
                status, body = 401, b"unauthorized"
            elif path in pages:
                status, body = 200, pages[path]
            else:
                status, body = 404, b"not found"
            index.requests.append((path, status))
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="esb test"')
            content_type = "application/octet-stream" if path.endswith(".whl") else "text/html"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    index = PrivateIndex(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bundle = scratch / "ca-bundle.pem"
    bundle.write_bytes(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() + ca.read_bytes())
    try:
        yield index, bundle
    finally:
        server.shutdown()
        server.server_close()
        # Where the backend keeps the credentials of the index for uv (Pants' default named
        # caches): the test's password must not outlive it.
        netrc = Path.home() / ".cache/pants/named_caches/esb_index_credentials"
        (netrc / "ESB_TEST_INTERNAL.netrc").unlink(missing_ok=True)


def add_private_service(checkout: Checkout, index_url: str) -> None:
    service = checkout.root / SERVICE
    (service / "src" / "esb_private").mkdir(parents=True)
    (service / "src" / "esb_private" / "__init__.py").write_text(f"from {MODULE} import GREETING\n")
    (service / "pyproject.toml").write_text(
        f"""\
[project]
name = "esb-private"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["{PACKAGE}"]

[[tool.uv.index]]
name = "{INDEX_NAME}"
url = "{index_url}"
explicit = true

[tool.uv.sources]
{PACKAGE} = {{ index = "{INDEX_NAME}" }}

[tool.uv]
package = false
"""
    )
    (service / "BUILD").write_text(
        """\
esb_service_image(
    name="private",
    base="//base:esb-service-base",
    repository="esb/private",
    command=["python", "-c", "import esb_private; print(esb_private.GREETING)"],
)
"""
    )


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    ]


def layer_files(checkout: Checkout) -> dict[str, bytes]:
    """Every regular file of every layer of the service's image: path → content."""
    layout = OciLayout(checkout.dist / "services.private" / "private.oci").load_image()
    files: dict[str, bytes] = {}
    for descriptor in layout.layers:
        with tarfile.open(layout.layout.blob_path(descriptor.digest)) as layer:
            for member in layer.getmembers():
                content = layer.extractfile(member) if member.isfile() else None
                if content is not None:
                    files[member.name] = content.read()
    return files


def test_a_lock_pinning_a_private_index_locks_and_builds_with_uv_credentials(
    scratch: Path,
    repo_root: Path,
    private_index: tuple[PrivateIndex, Path],
    monkeypatch: pytest.MonkeyPatch,
    docker_client: DockerClient,
) -> None:
    index, bundle = private_index
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    add_private_service(checkout, index.url)
    trust = f"--ca-certs-path={bundle}"
    credentials = (USERNAME_VARIABLE, PASSWORD_VARIABLE)
    monkeypatch.setenv(USERNAME_VARIABLE, USERNAME)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)

    lock = checkout.pants(trust, "esb-lock", TARGET, passed_env=credentials)

    assert lock.returncode == 0, lock.report()
    locked = (checkout.root / SERVICE / "uv.lock").read_text()
    assert f'source = {{ registry = "{index.url}" }}' in locked, locked
    assert PASSWORD not in locked and USERNAME not in locked

    denied = checkout.pants(trust, "package", TARGET)

    assert denied.returncode != 0, denied.report()
    assert f"`{INDEX_NAME}` ({index.url})" in denied.stderr, denied.report()
    assert f"set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}" in denied.stderr, denied.report()
    assert f"{SERVICE}/uv.lock" in denied.stderr, denied.report()
    assert "Traceback" not in denied.stderr

    package = checkout.pants(trust, "package", TARGET, passed_env=credentials)

    assert package.returncode == 0, package.report()
    assert (f"/files/{WHEEL}", 200) in index.requests
    files = layer_files(checkout)
    module = f".venv/lib/python3.11/site-packages/{MODULE}/__init__.py"
    assert files.get(module) == b'GREETING = "hello from the private index"\n', sorted(files)
    source = files.get("app/src/esb_private/__init__.py")
    assert source == f"from {MODULE} import GREETING\n".encode()
    for root in (checkout.dist, checkout.root / ".pants.d"):
        assert files_containing(root, PASSWORD.encode()) == [], root
        assert files_containing(root, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode())) == []
    assert not [path for path, content in files.items() if PASSWORD.encode() in content]
    for run in (lock, denied, package):
        assert PASSWORD not in run.stdout + run.stderr
    image = checkout.outputs(ImageTarget(TARGET, "esb_service_image", ())).load_into(docker_client)
    try:
        greeting = run_to_exit(docker_client, image.id)
    finally:
        docker_client.images.remove(image.id, force=True)
    assert (
        greeting.status == 0 and greeting.stdout == "hello from the private index\n"
    ), greeting.report()

    # The lock now pins another file than the index serves under that name and version.
    locked_hash = hashlib.sha256(build_wheel()).hexdigest()
    checkout.substitute(f"{SERVICE}/uv.lock", locked_hash, "0" * 64)

    mismatch = checkout.pants(trust, "package", TARGET, passed_env=credentials)

    assert mismatch.returncode != 0, mismatch.report()
    assert f"Installing a distribution that {SERVICE}/uv.lock pins failed" in mismatch.stderr
    assert f"{PACKAGE}==1.0.0: the file the index served does not have the sha256" in (
        mismatch.stderr
    ), mismatch.report()
    assert f"`pants esb-lock {TARGET}`" in mismatch.stderr, mismatch.report()
