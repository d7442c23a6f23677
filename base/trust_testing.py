"""Helpers for the trust scripts' tests: certificates made with the openssl CLI, an HTTPS handler,
and ways to run the scripts the way an image runs them."""

from __future__ import annotations

import dataclasses
import http.server
import os
import shlex
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
    """Makes EC keys and certificates under a directory with the openssl CLI."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def root_ca(self, name: str) -> Issued:
        return self._self_signed(
            name, ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
        )

    def self_signed_leaf(self, name: str) -> Issued:
        return self._self_signed(name, ["basicConstraints=critical,CA:FALSE"])

    def dated_root_ca(self, name: str, *, not_before: str, not_after: str) -> Issued:
        """A self-signed CA valid from not_before to not_after (YYYYMMDDHHMMSSZ): `openssl req`
        only dates certificates from now, `openssl ca` takes any dates."""
        issued = self._new_key(name)
        ca_dir = self._workdir / f"{name}.ca"
        ca_dir.mkdir()
        (ca_dir / "index.txt").touch()
        config = ca_dir / "config"
        config.write_text(
            "[ca]\n"
            "default_ca = dated\n"
            "[dated]\n"
            f"database = {ca_dir}/index.txt\n"
            f"new_certs_dir = {ca_dir}\n"
            "rand_serial = yes\n"
            "default_md = sha256\n"
            f"default_startdate = {not_before}\n"
            f"default_enddate = {not_after}\n"
            "policy = any_name\n"
            "x509_extensions = root_ca\n"
            "[any_name]\n"
            "commonName = supplied\n"
            "[root_ca]\n"
            "basicConstraints = critical,CA:TRUE\n"
            "keyUsage = critical,keyCertSign,cRLSign\n"
        )
        csr = self._request(issued, name)
        self._openssl(
            f"ca -batch -selfsign -notext -config {q(config)} -keyfile {q(issued.key)}"
            f" -in {q(csr)} -out {q(issued.cert)}"
        )
        return issued

    def issued_by(self, issuer: Issued, name: str, *, extensions: Sequence[str]) -> Issued:
        issued = self._new_key(name)
        csr = self._request(issued, name)
        extfile = self._workdir / f"{name}.ext"
        extfile.write_text("".join(f"{line}\n" for line in extensions))
        self._openssl(
            f"x509 -req -in {q(csr)} -CA {q(issuer.cert)} -CAkey {q(issuer.key)} -days 30"
            f" -extfile {q(extfile)} -out {q(issued.cert)}"
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

    def _self_signed(self, name: str, extensions: Sequence[str]) -> Issued:
        issued = self._new_key(name)
        addext = " ".join(f"-addext {q(extension)}" for extension in extensions)
        self._openssl(
            f"req -x509 -new -key {q(issued.key)} -days 30 -subj {q(f'/CN={name}')} {addext}"
            f" -out {q(issued.cert)}"
        )
        return issued

    def _new_key(self, name: str) -> Issued:
        issued = Issued(cert=self._workdir / f"{name}.pem", key=self._workdir / f"{name}.key")
        self._openssl(
            f"genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {q(issued.key)}"
        )
        return issued

    def _request(self, issued: Issued, name: str) -> Path:
        csr = self._workdir / f"{name}.csr"
        self._openssl(f"req -new -key {q(issued.key)} -subj {q(f'/CN={name}')} -out {q(csr)}")
        return csr

    @staticmethod
    def _openssl(command_line: str) -> None:
        subprocess.run(["openssl", *shlex.split(command_line)], check=True, capture_output=True)


def q(path_or_text: Path | str) -> str:
    """Quotes a path or a value for an openssl command line."""
    return shlex.quote(str(path_or_text))


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
