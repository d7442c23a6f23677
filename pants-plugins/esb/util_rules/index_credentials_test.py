from __future__ import annotations

import stat
from pathlib import Path

import pytest

from esb.util_rules import index_credentials
from esb.util_rules.index_credentials import (
    INDEX_CREDENTIALS_CACHE,
    IndexCredentials,
    IndexCredentialsRequest,
    PackageIndex,
    project_indexes,
)
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner, engine_error

INTERNAL = PackageIndex("internal-pypi", "https://pypi.internal.example:8443/simple")
OTHER = PackageIndex("other", "https://other.example/simple")


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *index_credentials.rules(),
            QueryRule(IndexCredentials, [IndexCredentialsRequest]),
        ]
    )


def write_credentials(
    rule_runner: RuleRunner, caches: Path, env: dict[str, str], *indexes: PackageIndex
) -> IndexCredentials:
    rule_runner.set_options([f"--named-caches-dir={caches}"], env=env)
    return rule_runner.request(IndexCredentials, [IndexCredentialsRequest(indexes)])


def test_uv_variables_become_a_private_netrc_file_in_the_named_cache(
    rule_runner: RuleRunner, tmp_path: Path
) -> None:
    env = {
        "UV_INDEX_INTERNAL_PYPI_USERNAME": "builder",
        "UV_INDEX_INTERNAL_PYPI_PASSWORD": "t0ken",
    }

    written = write_credentials(rule_runner, tmp_path, env, INTERNAL, OTHER)

    assert written == IndexCredentials(("internal-pypi",))
    netrc = tmp_path / INDEX_CREDENTIALS_CACHE / "INTERNAL_PYPI.netrc"
    assert netrc.read_text() == "machine pypi.internal.example login builder password t0ken\n"
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600
    assert not (tmp_path / INDEX_CREDENTIALS_CACHE / "OTHER.netrc").exists()


def test_the_users_netrc_is_read_for_the_index_host(
    rule_runner: RuleRunner, tmp_path: Path
) -> None:
    user_netrc = tmp_path / "netrc"
    user_netrc.write_text("machine other.example login me password secret\n")
    user_netrc.chmod(0o600)

    written = write_credentials(rule_runner, tmp_path / "caches", {"NETRC": str(user_netrc)}, OTHER)

    assert written == IndexCredentials(("other",))
    assert (tmp_path / "caches" / INDEX_CREDENTIALS_CACHE / "OTHER.netrc").read_text() == (
        "machine other.example login me password secret\n"
    )


def test_credentials_removed_from_the_environment_are_removed_from_the_cache(
    rule_runner: RuleRunner, tmp_path: Path
) -> None:
    netrc = tmp_path / INDEX_CREDENTIALS_CACHE / "INTERNAL_PYPI.netrc"
    netrc.parent.mkdir()
    netrc.write_text("machine pypi.internal.example login old password stale\n")

    written = write_credentials(rule_runner, tmp_path, {}, INTERNAL)

    assert written == IndexCredentials(())
    assert not netrc.exists()


def test_a_password_netrc_cannot_carry_is_refused_naming_the_variables(
    rule_runner: RuleRunner, tmp_path: Path
) -> None:
    env = {"UV_INDEX_OTHER_USERNAME": "me", "UV_INDEX_OTHER_PASSWORD": "two words"}

    with engine_error(
        index_credentials.IndexCredentialsError,
        contains="UV_INDEX_OTHER_USERNAME and UV_INDEX_OTHER_PASSWORD",
    ):
        write_credentials(rule_runner, tmp_path, env, OTHER)
    assert not (tmp_path / INDEX_CREDENTIALS_CACHE / "OTHER.netrc").exists()


def test_project_indexes_are_the_named_uv_indexes() -> None:
    pyproject = b"""
[[tool.uv.index]]
name = "internal-pypi"
url = "https://pypi.internal.example:8443/simple"

[[tool.uv.index]]
url = "https://unnamed.example/simple"
"""
    assert project_indexes(pyproject) == (INTERNAL,)
    assert project_indexes(b"<<<<<<< HEAD\n") == ()
