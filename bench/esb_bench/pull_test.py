"""Tests of the node's pull: the registry's access log read as requests, bytes and blob downloads
(of a real registry, Debian's docker-registry, when installed), and the choice of the service
whose first answer is timed."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from esb_bench.monorepo import PROFILES, generate
from esb_bench.process import BenchError
from esb_bench.pull import (
    ANSWERING_PROFILE,
    DIRECT,
    Registry,
    Traffic,
    answering_service,
    du_bytes,
    reference,
    registry_config,
    traffic,
)

BLOB = "sha256:" + "ab" * 32
ACCESS_LOG = f"""\
127.0.0.1 - - [05/Dec/2026:20:54:10 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "docker/20.10.24"
127.0.0.1 - - [05/Dec/2026:20:54:10 +0000] "HEAD /v2/ours/esb-bench/svc-001/manifests/latest HTTP/1.1" 200 0 "" "docker/20.10.24"
127.0.0.1 - - [05/Dec/2026:20:54:10 +0000] "GET /v2/ours/esb-bench/svc-001/blobs/{BLOB} HTTP/1.1" 200 1000 "" "docker/20.10.24"
127.0.0.1 - - [05/Dec/2026:20:54:10 +0000] "HEAD /v2/ours/esb-bench/svc-001/blobs/{BLOB} HTTP/1.1" 200 - "" "docker/20.10.24"
127.0.0.1 - - [05/Dec/2026:20:54:10 +0000] "GET /v2/ours/esb-bench/svc-002/blobs/{BLOB} HTTP/1.1" 404 157 "" "docker/20.10.24"
time="2026-12-05T20:54:10Z" level=warning msg="not a request"
"""


def test_traffic_counts_every_request_its_bytes_and_the_blobs_sent() -> None:
    assert traffic(ACCESS_LOG) == Traffic(requests=5, bytes_sent=1159, blobs=1)


def test_no_requests_no_traffic() -> None:
    assert traffic("") == Traffic(0, 0, 0)


def test_the_answering_service_is_the_first_http_api_by_name(tmp_path: Path) -> None:
    services = generate(tmp_path, len(PROFILES)).services

    service, port = answering_service(list(reversed(services)))

    first = min(s.name for s in services if s.profile == ANSWERING_PROFILE)
    assert (service.name, port) == (first, "8080")


def test_a_monorepo_without_an_answering_service_is_an_error(tmp_path: Path) -> None:
    services = generate(tmp_path, len(PROFILES)).services
    others = [s for s in services if s.profile != ANSWERING_PROFILE]

    with pytest.raises(BenchError, match=ANSWERING_PROFILE):
        answering_service(others)


def test_references_name_the_side_in_the_registry() -> None:
    assert (
        reference("127.0.0.1:5000", "ours", "esb-bench/svc-001", "latest")
        == "127.0.0.1:5000/ours/esb-bench/svc-001:latest"
    )


def test_du_bytes_reads_the_size_before_the_path() -> None:
    assert du_bytes("123456\t/tmp/engine/data/overlay2\n") == 123456


def test_the_registry_listens_on_loopback_without_tls_and_logs_requests(tmp_path: Path) -> None:
    config = registry_config(tmp_path, 5123)

    assert "addr: 127.0.0.1:5123" in config
    assert "tls" not in config and "auth" not in config
    assert "accesslog:\n    disabled: false" in config


# In CI, which installs it (tests/infra/registry.sh), a missing registry fails the test.
@pytest.mark.skipif(
    not shutil.which("docker-registry") and os.environ.get("CI") != "true",
    reason="needs Debian's docker-registry",
)
def test_a_real_registry_reports_the_traffic_of_a_step(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    content = b"layer bytes " * 1000
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    try:
        registry.start()
        root = f"http://{registry.address}/v2/bench/blob"
        started = DIRECT.open(urllib.request.Request(f"{root}/blobs/uploads/", method="POST"))
        location = urllib.parse.urljoin(root, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        DIRECT.open(
            urllib.request.Request(
                f"{location}{separator}digest={digest}",
                data=content,
                method="PUT",
                # Not urllib's default, a form, which the registry would read as its parameters.
                headers={"Content-Type": "application/octet-stream"},
            )
        )
        offset = registry.offset()

        with DIRECT.open(f"{root}/blobs/{digest}") as response:
            assert response.read() == content
        DIRECT.open(urllib.request.Request(f"{root}/blobs/{digest}", method="HEAD"))
        with pytest.raises(urllib.error.HTTPError) as missing:
            DIRECT.open(f"{root}/manifests/absent")
        error_body = missing.value.read()

        assert registry.traffic_since(offset) == Traffic(
            requests=3, bytes_sent=len(content) + len(error_body), blobs=1
        )
    finally:
        registry.stop()
