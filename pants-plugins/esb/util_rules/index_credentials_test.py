from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from pants.engine.fs import EMPTY_DIGEST
from pants.engine.platform import Platform
from pants.engine.process import Process, ProcessResult
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import MockGet, RuleRunner, engine_error, run_rule_with_mocks

from esb.subsystems.image_tool import ImageToolRequest
from esb.subsystems.uv import UvWheel, UvWheelRequest
from esb.util_rules import index_credentials
from esb.util_rules.index_credentials import (
    INDEX_CREDENTIALS_CACHE,
    INDEX_CREDENTIALS_DIR,
    IndexCredentials,
    IndexCredentialsRequest,
    PackageIndex,
    project_indexes,
)
from esb.util_rules.layers import (
    DistributionLayerRequest,
    LockedDistribution,
    build_distribution_layer,
)
from esb.util_rules.lock_testutil import UV_WHEEL
from esb.util_rules.platform import BasePlatform

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


def distribution_layer_request(index: str) -> ImageToolRequest:
    """The image-tool run that `build_distribution_layer` asks for, for one distribution."""
    requests: list[ImageToolRequest] = []

    def process(request: ImageToolRequest) -> Process:
        requests.append(request)
        return Process(argv=("true",), description=request.description)

    run_rule_with_mocks(
        build_distribution_layer,
        rule_args=[
            DistributionLayerRequest(
                (LockedDistribution("greeting", "greeting==1.0 --hash=sha256:00\n", index),),
                BasePlatform("3.11.2", "2.36", "amd64", "/usr/bin/python3.11"),
            ),
            Platform.linux_x86_64,
        ],
        mock_gets=[
            MockGet(UvWheel, (UvWheelRequest,), lambda _: UV_WHEEL),
            MockGet(Process, (ImageToolRequest,), process),
            # The rule reads only the outputs of the result.
            MockGet(
                ProcessResult, (Process,), lambda _: SimpleNamespace(output_digest=EMPTY_DIGEST)
            ),
        ],
    )
    (request,) = requests
    return request


def test_a_private_distribution_layer_keys_its_index_and_reads_credentials_from_the_cache() -> None:
    request = distribution_layer_request(f"{INTERNAL.name}={INTERNAL.url}")

    argv = " ".join(request.full_argv)
    assert f"--index {INTERNAL.name}={INTERNAL.url}" in argv
    assert f"--credentials-dir {INDEX_CREDENTIALS_DIR}" in argv
    assert dict(request.append_only_caches) == {INDEX_CREDENTIALS_CACHE: INDEX_CREDENTIALS_DIR}


def test_a_pypi_distribution_layer_names_no_index_and_no_credentials() -> None:
    request = distribution_layer_request("")

    assert "--index" not in request.full_argv and "--credentials-dir" not in request.full_argv
    assert not request.append_only_caches
