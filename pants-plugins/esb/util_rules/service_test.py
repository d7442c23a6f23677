from __future__ import annotations

import pytest

from esb.util_rules.service import check_service_files
from pants.engine.addresses import Address
from pants.engine.target import InvalidFieldException


def test_uv_project_present() -> None:
    check_service_files(
        Address("services/api", target_name="api"),
        ("services/api/pyproject.toml", "services/api/uv.lock", "services/api/src/a.py"),
    )


def test_missing_lock_names_target_directory_and_fix() -> None:
    with pytest.raises(InvalidFieldException) as exc:
        check_service_files(
            Address("services/api", target_name="api"),
            ("services/api/pyproject.toml", "services/api/sub/uv.lock"),
        )
    message = str(exc.value)
    assert "target services/api:api selects no uv.lock in services/api/" in message
    assert "run `uv lock` there" in message
