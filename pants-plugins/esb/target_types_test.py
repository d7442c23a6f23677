from __future__ import annotations

from textwrap import dedent

import pytest

from esb.target_types import (
    EsbBaseImageTarget,
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
