import pytest

from esb_api.__main__ import DEFAULT_PORT, port_from_environment


def test_port_defaults_when_unset_or_empty() -> None:
    assert port_from_environment({}) == DEFAULT_PORT == 8080
    assert port_from_environment({"PORT": ""}) == DEFAULT_PORT


def test_port_is_read_from_the_environment() -> None:
    assert port_from_environment({"PORT": "9000"}) == 9000


@pytest.mark.parametrize("value", ["http", "-1", "0", "65536", " 80"])
def test_invalid_port_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="PORT must be an integer"):
        port_from_environment({"PORT": value})
