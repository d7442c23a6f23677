"""Fixtures for the trust scripts' tests."""

from __future__ import annotations

import http.server
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest
from trust_testing import CertFactory, HelloHandler, TlsServer


@pytest.fixture
def certs(tmp_path: Path) -> CertFactory:
    return CertFactory(tmp_path / "pki")


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """The directory a host would mount at SSL_CERT_DIR (created empty)."""
    directory = tmp_path / "mounted-cas"
    directory.mkdir()
    return directory


@pytest.fixture
def trust_dir(tmp_path: Path) -> Path:
    """ESB_TRUST_DIR: not created, the script does that."""
    return tmp_path / "trust"


@pytest.fixture
def tls_server(certs: CertFactory) -> Iterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 whose certificate a fresh root CA signed."""
    ca = certs.root_ca("ESB Test Root CA")
    server_cert = certs.server_cert(ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert.cert, server_cert.key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HelloHandler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield TlsServer(url=f"https://127.0.0.1:{port}/", port=port, ca=ca)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory that another user can enter (pytest's tmp_path is private to this user)."""
    directory = Path(tempfile.mkdtemp(prefix="esb-trust-test-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)
