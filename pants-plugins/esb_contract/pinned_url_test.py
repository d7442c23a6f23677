from __future__ import annotations

import pytest

from esb_contract.pinned_url import PinnedUrl

SHA256 = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"


def test_a_pin_is_read_back_from_its_argument() -> None:
    pin = PinnedUrl("https://files.pythonhosted.org/p/uv-0.13.9.whl", SHA256, 17606939)
    assert pin.to_argument() == f"{pin.url}#sha256={SHA256}&size=17606939"
    assert PinnedUrl.from_argument(pin.to_argument()) == pin


@pytest.mark.parametrize(
    "value",
    [
        "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl",
        f"uv.whl#sha256={SHA256}&size=1",
        f"https://example.com/uv.whl#sha256={SHA256}",
        "https://example.com/uv.whl#sha256=abc&size=1",
        "https://example.com/uv.whl",
    ],
)
def test_a_path_or_an_incomplete_pin_is_no_pin(value: str) -> None:
    assert PinnedUrl.from_argument(value) is None
