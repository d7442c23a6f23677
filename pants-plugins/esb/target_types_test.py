from __future__ import annotations

from textwrap import dedent

import pytest

from esb.target_types import (
    EsbBaseImageTarget,
    EsbBasePackagesField,
    EsbBaseUpstreamField,
    EsbBaseUpstreamPlatformField,
    EsbImageRepositoryField,
    EsbServiceImageTarget,
    EsbServicePortsField,
)
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import InvalidFieldException
from pants.testutil.rule_runner import RuleRunner


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(target_types=[EsbBaseImageTarget, EsbServiceImageTarget])


def _service_build(**fields: str) -> str:
    extra = "".join(f"    {name}={value},\n" for name, value in fields.items())
    return dedent(
        """\
        esb_service_image(
            name="api",
            base="//base:esb-service-base",
            command=["python", "-m", "esb_api"],
        """
    ) + extra + ")\n"


def _load_error(rule_runner: RuleRunner, build: str) -> str:
    rule_runner.write_files({"services/api/BUILD": build})
    with pytest.raises(ExecutionError) as exc:
        rule_runner.get_target(Address("services/api", target_name="api"))
    return str(exc.value)


@pytest.mark.parametrize(
    "field, value, expected",
    [
        pytest.param("repository", '"ESB/Api"', "'ESB', 'Api' are not valid OCI", id="repository"),
        pytest.param("image_tags", '["ok", "-bad"]', "invalid tag(s) '-bad'", id="tag"),
        pytest.param("environment", '{"1X": "y"}', "invalid variable name(s) '1X'", id="env"),
        pytest.param("ports", '["80", "70000", "8443/quic"]', "'70000', '8443/quic'", id="ports"),
        pytest.param("workdir", '"app"', "is 'app', a relative path", id="workdir"),
    ],
)
def test_invalid_field_names_target_field_and_fix(
    rule_runner: RuleRunner, field: str, value: str, expected: str
) -> None:
    message = _load_error(rule_runner, _service_build(**{field: value}))
    assert f"The `{field}` field of the target services/api:api" in message
    assert expected in message
    assert "Fix:" in message


def test_missing_required_fields_are_named(rule_runner: RuleRunner) -> None:
    message = _load_error(rule_runner, 'esb_service_image(name="api")\n')
    assert "base" in message or "command" in message


def test_invalid_debian_package_names(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"base/BUILD": 'esb_base_image(name="b", packages=["python3", "Bad_Name"])\n'}
    )
    with pytest.raises(ExecutionError, match=r"invalid Debian package name\(s\) 'Bad_Name'"):
        rule_runner.get_target(Address("base", target_name="b"))


def test_valid_service_defaults(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"services/api/BUILD": _service_build(ports='["8080", "9000/udp"]')})
    target = rule_runner.get_target(Address("services/api", target_name="api"))
    assert target[EsbImageRepositoryField].value_or_default() == "api"
    assert target[EsbServicePortsField].normalized() == ("8080/tcp", "9000/udp")


def test_repository_validation_is_a_field_error() -> None:
    with pytest.raises(InvalidFieldException, match="repository"):
        EsbImageRepositoryField("a//b", Address("x"))


_DIGEST = "sha256:" + "ab" * 32


def _base_error(rule_runner: RuleRunner, build: str) -> str:
    rule_runner.write_files({"base/BUILD": build})
    with pytest.raises(ExecutionError) as exc:
        rule_runner.get_target(Address("base", target_name="b"))
    return str(exc.value)


def test_base_from_upstream(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"base/BUILD": f'esb_base_image(name="b", upstream="python:3.12-slim-bookworm@{_DIGEST}")\n'}
    )
    target = rule_runner.get_target(Address("base", target_name="b"))
    assert target[EsbBaseUpstreamField].value == f"python:3.12-slim-bookworm@{_DIGEST}"
    assert target[EsbBaseUpstreamPlatformField].value == "linux/amd64"
    assert target[EsbBasePackagesField].value is None


def test_base_with_packages_and_upstream(rule_runner: RuleRunner) -> None:
    message = _base_error(
        rule_runner, f'esb_base_image(name="b", packages=["python3"], upstream="python@{_DIGEST}")\n'
    )
    assert "The target base:b sets both `packages` and `upstream`" in message
    assert "Fix: remove one of the two fields" in message


def test_base_with_neither_packages_nor_upstream(rule_runner: RuleRunner) -> None:
    message = _base_error(rule_runner, 'esb_base_image(name="b")\n')
    assert "The target base:b sets neither `packages` nor `upstream`" in message
    assert 'upstream="python:3.12-slim-bookworm@sha256:<digest>"' in message
    assert "pants esb-lock base:b" in message


@pytest.mark.parametrize(
    "fields, expected",
    [
        pytest.param('upstream=" python@x"', "The `upstream` field of the target base:b is ' python@x'", id="upstream"),
        pytest.param(
            f'upstream="python@{_DIGEST}", upstream_platform="amd64"',
            "The `upstream_platform` field of the target base:b is 'amd64'",
            id="platform",
        ),
    ],
)
def test_invalid_upstream_fields(rule_runner: RuleRunner, fields: str, expected: str) -> None:
    message = _base_error(rule_runner, f'esb_base_image(name="b", {fields})\n')
    assert expected in message and "Fix:" in message
