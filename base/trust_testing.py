"""Helpers for the trust scripts' tests: certificates made with the openssl CLI, an HTTPS handler,
and ways to run the scripts the way an image runs them."""

from __future__ import annotations

import dataclasses
import http.server
import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

BASE_DIR = Path(__file__).parent
ENSURE_CA_TRUST = BASE_DIR / "ensure_ca_trust.sh"
ENTRYPOINT = BASE_DIR / "entrypoint.sh"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclasses.dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    def pem(self) -> str:
        return self.cert.read_text()


class CertFactory:
    """Makes keys and certificates under a directory with the openssl CLI."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def root_ca(self, name: str) -> Issued:
        issued = self._paths(name)
        self._openssl(
            "req", "-x509", "-new", *self._new_key(issued), "-days", "30", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(issued.cert),
        )
        return issued

    def dated_root_ca(self, name: str, *, not_before: str, not_after: str) -> Issued:
        """A self-signed CA valid from not_before to not_after (YYYYMMDDHHMMSSZ): `openssl req`
        only dates certificates from now, `openssl ca` takes any dates."""
        issued = self._paths(name)
        ca_dir = self._workdir / f"{name}.ca"
        ca_dir.mkdir()
        (ca_dir / "index.txt").touch()
        (ca_dir / "config").write_text(
            f"""\
[ca]
default_ca = dated
[dated]
database = {ca_dir}/index.txt
new_certs_dir = {ca_dir}
rand_serial = yes
default_md = sha256
policy = any_name
[any_name]
commonName = supplied
[root_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
"""
        )
        csr = ca_dir / "request.csr"
        self._openssl(
            "req", "-new", *self._new_key(issued), "-subj", f"/CN={name}", "-out", str(csr)
        )
        self._openssl(
            "ca", "-batch", "-selfsign", "-notext", "-config", str(ca_dir / "config"),
            "-keyfile", str(issued.key), "-in", str(csr), "-extensions", "root_ca",
            "-startdate", not_before, "-enddate", not_after, "-out", str(issued.cert),
        )
        return issued

    def issued_by(self, issuer: Issued, name: str, *, extensions: Sequence[str]) -> Issued:
        issued = self._paths(name)
        csr = self._workdir / f"{name}.csr"
        extfile = self._workdir / f"{name}.ext"
        extfile.write_text("".join(f"{line}\n" for line in extensions))
        self._openssl(
            "req", "-new", *self._new_key(issued), "-subj", f"/CN={name}", "-out", str(csr)
        )
        self._openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(issuer.cert), "-CAkey", str(issuer.key),
            "-days", "30", "-extfile", str(extfile), "-out", str(issued.cert),
        )
        return issued

    def server_cert(self, issuer: Issued) -> Issued:
        return self.issued_by(
            issuer,
            "127.0.0.1",
            extensions=[
                "basicConstraints=critical,CA:FALSE",
                "subjectAltName=IP:127.0.0.1",
                "extendedKeyUsage=serverAuth",
            ],
        )

    def intermediate_ca(self, issuer: Issued, name: str) -> Issued:
        return self.issued_by(issuer, name, extensions=["basicConstraints=critical,CA:TRUE"])

    def self_signed_leaf(self, name: str) -> Issued:
        issued = self._paths(name)
        self._openssl(
            "req", "-x509", "-new", *self._new_key(issued), "-days", "30", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:FALSE", "-out", str(issued.cert),
        )
        return issued

    def _paths(self, name: str) -> Issued:
        return Issued(cert=self._workdir / f"{name}.pem", key=self._workdir / f"{name}.key")

    @staticmethod
    def _new_key(issued: Issued) -> list[str]:
        return [
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(issued.key),
        ]

    @staticmethod
    def _openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)


def clean_env(**variables: str) -> dict[str, str]:
    """The environment of a container: nothing from the test runner but PATH."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables}


def run_script(
    argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_with_exports(
    exports: str, argv: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Runs argv after evaluating ensure_ca_trust.sh's stdout, as entrypoint.sh does."""
    return run_script(["bash", "-c", 'eval "$1"; shift; exec "$@"', "-", exports, *argv], env)


@dataclasses.dataclass(frozen=True)
class TlsServer:
    url: str
    port: int
    ca: Issued


class HelloHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"trusted\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


