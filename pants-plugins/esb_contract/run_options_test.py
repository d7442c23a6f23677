from __future__ import annotations

import pytest

from esb_contract.run_options import PUBLISH


@pytest.mark.parametrize(
    "text, parts",
    [
        ("8080", (None, None, "8080", None)),
        ("9090:8080/tcp", (None, "9090", "8080", "/tcp")),
        (":8080", (None, "", "8080", None)),
        ("127.0.0.1:9090:8080/udp", ("127.0.0.1", "9090", "8080", "/udp")),
        ("[::1]:9090:8080", ("[::1]", "9090", "8080", None)),
    ],
)
def test_ports_to_publish_as_docker_run_reads_them(text: str, parts: tuple) -> None:
    match = PUBLISH.fullmatch(text)
    assert match is not None
    assert (match["ip"], match["host"], match["container"], match["protocol"]) == parts


@pytest.mark.parametrize("text", ["http", "8080/quic", "a:b:c", "8080\n", ""])
def test_what_is_not_a_port_to_publish(text: str) -> None:
    assert PUBLISH.fullmatch(text) is None
