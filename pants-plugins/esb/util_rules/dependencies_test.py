from __future__ import annotations

import pytest
from pants.core.target_types import FileTarget
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.engine.target import InferredDependencies
from pants.testutil.rule_runner import RuleRunner

from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import dependencies
from esb.util_rules.dependencies import InferServiceBaseDependency, ServiceBaseFieldSet

_SERVICE = 'esb_service_image(name="api", base="{base}", command=["python"])\n'


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *dependencies.rules(),
            QueryRule(InferredDependencies, [InferServiceBaseDependency]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget, FileTarget],
    )


def _infer(rule_runner: RuleRunner) -> InferredDependencies:
    target = rule_runner.get_target(Address("services/api", target_name="api"))
    return rule_runner.request(
        InferredDependencies,
        [InferServiceBaseDependency(ServiceBaseFieldSet.create(target))],
    )


@pytest.mark.parametrize("base", ["//base:esb-service-base", "base:esb-service-base"])
def test_service_depends_on_its_base(rule_runner: RuleRunner, base: str) -> None:
    rule_runner.write_files(
        {
            "base/BUILD": 'esb_base_image(name="esb-service-base", packages=["python3"])\n',
            "services/api/BUILD": _SERVICE.format(base=base),
        }
    )
    assert list(_infer(rule_runner).include) == [Address("base", target_name="esb-service-base")]


def test_base_of_the_wrong_type_is_refused(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "base/BUILD": 'file(name="not-an-image", source="f.txt")\n',
            "base/f.txt": "",
            "services/api/BUILD": _SERVICE.format(base="//base:not-an-image"),
        }
    )
    with pytest.raises(ExecutionError) as exc:
        _infer(rule_runner)
    message = str(exc.value)
    assert "The `base` field of the target services/api:api" in message
    assert "is a `file` target, not an `esb_base_image`" in message


def test_missing_base_target_is_named(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"base/BUILD": "", "services/api/BUILD": _SERVICE.format(base="//base:nope")}
    )
    with pytest.raises(ExecutionError, match="nope"):
        _infer(rule_runner)


def test_a_base_naming_the_service_itself_says_so(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"services/api/BUILD": _SERVICE.format(base=":api")})
    with pytest.raises(ExecutionError) as exc:
        _infer(rule_runner)
    assert (
        "The `base` field of the target services/api:api is ':api', which is this target "
        "itself, not an `esb_base_image`."
    ) in str(exc.value)


def test_an_empty_base_is_refused_before_it_resolves_to_the_service(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files({"services/api/BUILD": _SERVICE.format(base="")})
    with pytest.raises(ExecutionError) as exc:
        _infer(rule_runner)
    message = str(exc.value)
    assert (
        "The `base` field of the target services/api:api is '', which names no target."
    ) in message
    assert "esb_service_image" not in message.partition("Fix:")[0]
