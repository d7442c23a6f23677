from __future__ import annotations

import logging
import signal
import sys

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import InvalidFieldException
from pants.testutil.rule_runner import RuleRunner
from pants.util.frozendict import FrozenDict

from esb import target_types
from esb.repository_names import DEFAULT_REPOSITORY, RepositoryNameError
from esb.target_types import (
    LINUX_SIGNALS,
    EsbBaseImageTarget,
    EsbBasePackagesField,
    EsbBasePlatformsField,
    EsbBaseUpstreamField,
    EsbBaseUpstreamPlatformField,
    EsbImageCreatedField,
    EsbImageOutputPathField,
    EsbImageRepositoryField,
    EsbImageStopSignalField,
    EsbServiceCommandField,
    EsbServiceImageTarget,
    EsbServicePortsField,
    image_labels,
    repository_component_for,
)


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(target_types=[EsbBaseImageTarget, EsbServiceImageTarget])


def _service_build(**fields: str) -> str:
    """The service `services/api:api` with `fields` (Python literals) set or replaced."""
    required = {"base": '"//base:esb-service-base"', "command": '["python", "-m", "esb_api"]'}
    lines = "".join(f"    {name}={value},\n" for name, value in {**required, **fields}.items())
    return f'esb_service_image(\n    name="api",\n{lines})\n'


def _load_error(rule_runner: RuleRunner, build: str) -> str:
    rule_runner.write_files({"services/api/BUILD": build})
    with pytest.raises(ExecutionError) as exc:
        rule_runner.get_target(Address("services/api", target_name="api"))
    return str(exc.value)


@pytest.mark.parametrize(
    "field, value, expected",
    [
        pytest.param(
            "repository", '"ESB/{name}"', "is not made of lower-case letters", id="repository"
        ),
        pytest.param(
            "repository",
            '"esb/{target}"',
            "placeholder(s) {target}, which are not among {name}, {directory}",
            id="repository-placeholder",
        ),
        pytest.param("image_tags", '["ok", "-bad"]', "invalid tag(s) '-bad'", id="tag"),
        pytest.param("environment", '{"1X": "y"}', "invalid variable name(s) '1X'", id="env"),
        pytest.param("ports", '["80", "70000", "8443/quic"]', "'70000', '8443/quic'", id="ports"),
        pytest.param("workdir", '"app"', "is 'app', a relative path", id="workdir"),
        pytest.param("extras", '["server", "-x", "a b"]', "extra name(s) '-x', 'a b'", id="extras"),
        pytest.param(
            "volumes", '["/data", "data"]', "relative or empty path(s) 'data'", id="volumes"
        ),
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
    assert target[EsbImageRepositoryField].image_repository(DEFAULT_REPOSITORY) == "api"
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


def base_target(rule_runner: RuleRunner, name: str) -> EsbBaseImageTarget:
    target = rule_runner.get_target(Address("base", target_name=name))
    assert isinstance(target, EsbBaseImageTarget)
    return target


def test_base_from_upstream(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "base/BUILD": f'esb_base_image(name="b", upstream="python:3.12-slim-bookworm@{_DIGEST}")\n'
        }
    )
    target = base_target(rule_runner, "b")
    assert target[EsbBaseUpstreamField].value == f"python:3.12-slim-bookworm@{_DIGEST}"
    assert target[EsbBaseUpstreamPlatformField].value is None
    assert target.architectures() == ("amd64",)
    assert target[EsbBasePackagesField].value is None


def test_base_with_packages_and_upstream(rule_runner: RuleRunner) -> None:
    message = _base_error(
        rule_runner,
        f'esb_base_image(name="b", packages=["python3"], upstream="python@{_DIGEST}")\n',
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
        pytest.param(
            'upstream=" python@x"',
            "The `upstream` field of the target base:b is ' python@x'",
            id="upstream",
        ),
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


def test_a_debian_base_is_built_for_amd64_unless_its_platforms_say_otherwise(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files(
        {
            "base/BUILD": 'esb_base_image(name="b", packages=["python3"])\n'
            'esb_base_image(name="both", packages=["python3"], '
            'platforms=["linux/arm64", "linux/amd64"])\n'
        }
    )
    default = base_target(rule_runner, "b")
    assert default[EsbBasePlatformsField].value == ("linux/amd64",)
    assert default.architectures() == ("amd64",)
    both = base_target(rule_runner, "both")
    assert both.architectures() == ("arm64", "amd64")


@pytest.mark.parametrize(
    "platforms, expected",
    [
        pytest.param(
            '["linux/s390x", "arm64"]',
            "The `platforms` field of the target base:b has 'linux/s390x', 'arm64', which this "
            "plugin cannot build a Debian base for.\n\n"
            'Fix: list platforms among "linux/amd64", "linux/arm64".',
            id="unknown",
        ),
        pytest.param(
            '["linux/arm64", "linux/arm64"]',
            "The `platforms` field of the target base:b is ['linux/arm64', 'linux/arm64']: a "
            "base needs each platform once, and at least one.",
            id="twice",
        ),
        pytest.param("[]", "is []: a base needs each platform once, and at least one.", id="none"),
    ],
)
def test_invalid_platforms_name_the_field_and_the_fix(
    rule_runner: RuleRunner, platforms: str, expected: str
) -> None:
    message = _base_error(
        rule_runner, f'esb_base_image(name="b", packages=["python3"], platforms={platforms})\n'
    )
    assert expected in message and "Fix:" in message


def test_an_upstream_base_takes_its_platforms_from_either_field(rule_runner: RuleRunner) -> None:
    upstream = f'upstream="python@{_DIGEST}"'
    rule_runner.write_files(
        {
            "base/BUILD": f'esb_base_image(name="both", {upstream}, '
            'platforms=["linux/amd64", "linux/arm64"])\n'
            f'esb_base_image(name="one", {upstream}, upstream_platform="linux/arm64/v8")\n'
        }
    )
    both = base_target(rule_runner, "both")
    assert both.architectures() == ("amd64", "arm64")
    one = base_target(rule_runner, "one")
    assert [str(platform) for platform in one.platforms()] == ["linux/arm64/v8"]


@pytest.mark.parametrize(
    "fields, expected, fix",
    [
        pytest.param(
            f'upstream="python@{_DIGEST}", platforms=["linux/arm64"], '
            'upstream_platform="linux/arm64"',
            "The target base:b sets both `platforms` and `upstream_platform`",
            "Fix: remove `upstream_platform` and list every platform in `platforms`.",
            id="both",
        ),
        pytest.param(
            'packages=["python3"], upstream_platform="linux/arm64"',
            "The target base:b sets `upstream_platform`",
            'Fix: set `platforms=["linux/arm64"]` instead.',
            id="without-upstream",
        ),
    ],
)
def test_upstream_platform_conflicts_name_the_fix(
    rule_runner: RuleRunner, fields: str, expected: str, fix: str
) -> None:
    message = _base_error(rule_runner, f'esb_base_image(name="b", {fields})\n')
    assert expected in message and fix in message


_NOT_SIGNAL = "which is not a Linux signal"


@pytest.mark.parametrize(
    "field, value, expected, fix",
    [
        *(
            pytest.param(
                "output_path",
                repr(path),
                f"is {path!r}, {problem}",
                "give a relative path without `..`, `.` or empty components, e.g. "
                '`output_path="services.api/api"` (the default',
                id=f"output_path-{name}",
            )
            for name, path, problem in (
                ("parent", "../outside/api", "a path that leaves the dist directory"),
                ("inner-parent", "a/../../api", "a path that leaves the dist directory"),
                ("absolute", "/tmp/api", "an absolute path"),
                ("empty-component", "a//api", "not a normalized path"),
                ("trailing-slash", "a/api/", "not a normalized path"),
                ("dot", "./api", "not a normalized path"),
                ("empty", "", "not a normalized path"),
            )
        ),
        *(
            pytest.param(
                "command",
                value,
                expected,
                'give the program and its arguments, e.g. `command=["python"',
                id=f"command-{name}",
            )
            for name, value, expected in (
                ("empty", "[]", "is [], empty: the image would have no program to start"),
                ("blank", '["", "-m", "x"]', "is ['', '-m', 'x'], whose first item, the program"),
                ("whitespace", '[" "]', "is [' '], whose first item, the program to run, is blank"),
            )
        ),
        *(
            pytest.param(
                "base",
                repr(value),
                f"is {value!r}, which names no target.",
                "set `base` to the address of an `esb_base_image` target, e.g. ",
                id=f"base-{name}",
            )
            for name, value in (("empty", ""), ("blank", " "))
        ),
        *(
            pytest.param(
                "stop_signal",
                repr(value),
                f"is {value!r}{expected}",
                fix,
                id=f"stop_signal-{name}",
            )
            for name, value, expected, fix in (
                ("unknown", "SIGFOO", f", {_NOT_SIGNAL}", 'use a signal name such as `"SIGTERM"`'),
                ("rt-range", "SIGRTMIN+16", f", {_NOT_SIGNAL}", "use a signal name"),
                ("not-on-linux", "SIGEMT", f", {_NOT_SIGNAL}", "use a signal name"),
                ("zero", "0", f", {_NOT_SIGNAL}", "use a signal name"),
                ("past-sigrtmax", "65", f", {_NOT_SIGNAL}", "use a signal name"),
                ("negative", "-1", f", {_NOT_SIGNAL}", "use a signal name"),
                ("non-ascii-digit", "\u0663", f", {_NOT_SIGNAL}", "use a signal name"),
                ("lower-case", "sigterm", f", {_NOT_SIGNAL}", 'use `"SIGTERM"`, or a signal'),
                ("no-prefix", "TERM", f", {_NOT_SIGNAL}", 'use `"SIGTERM"`, or a signal'),
                ("sigstop", "SIGSTOP", ": SIGSTOP suspends the process", "use the signal"),
                ("sigstop-number", "19", ": SIGSTOP suspends the process", "use the signal"),
            )
        ),
    ],
)
def test_a_value_that_would_build_a_broken_image_is_refused_when_the_target_is_read(
    rule_runner: RuleRunner, field: str, value: str, expected: str, fix: str
) -> None:
    message = _load_error(rule_runner, _service_build(**{field: value}))
    assert f"The `{field}` field of the target services/api:api {expected}" in message
    assert f"Fix: {fix}" in message


@pytest.mark.parametrize("value", ["images/api", "api", "a.b/c-d/e_f"])
def test_a_relative_output_path_inside_dist_is_kept(value: str) -> None:
    field = EsbImageOutputPathField(value, Address("services/api", target_name="api"))
    assert field.value_or_default(file_ending=None) == value


def test_a_command_may_pass_empty_arguments() -> None:
    field = EsbServiceCommandField(["python", "-c", ""], Address("services/api", target_name="api"))
    assert field.value == ("python", "-c", "")


@pytest.mark.parametrize(
    "value",
    [
        "SIGTERM",
        "SIGINT",
        "SIGQUIT",
        "SIGHUP",
        "SIGUSR1",
        "SIGUSR2",
        "SIGWINCH",
        "SIGKILL",
        "SIGRTMIN",
        "SIGRTMIN+3",
        "SIGRTMIN+15",
        "SIGRTMAX-14",
        "SIGRTMAX",
        "SIGCLD",
        "1",
        "15",
        "64",
    ],
)
def test_linux_stop_signals_are_accepted(value: str) -> None:
    assert EsbImageStopSignalField(value, Address("services/api", target_name="api")).value == value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's own signal numbers")
def test_the_signal_table_has_the_numbers_of_linux() -> None:
    # Python 3.9's module lacks SIGSTKFLT (16); every other name is there.
    known = {name: number for name, number in LINUX_SIGNALS.items() if hasattr(signal, name)}
    assert set(LINUX_SIGNALS) - set(known) - {"SIGSTKFLT"} == {
        name for name in LINUX_SIGNALS if "+" in name or "-" in name
    }
    assert known == {name: int(getattr(signal, name)) for name in known}
    assert [LINUX_SIGNALS[f"SIGRTMIN+{n}"] for n in range(1, 16)] == list(range(35, 50))
    assert [LINUX_SIGNALS[f"SIGRTMAX-{n}"] for n in range(14, 0, -1)] == list(range(50, 64))
    assert set(LINUX_SIGNALS.values()) == set(range(1, 32)) | set(range(34, 65))


@pytest.mark.parametrize(
    "name, expected",
    [
        pytest.param("api", "api", id="valid"),
        pytest.param("My_Svc", "my_svc", id="upper-case"),
        pytest.param("My Svc", "my-svc", id="space"),
        pytest.param("svc@2", "svc-2", id="other-character"),
        pytest.param("a._b", "a-b", id="separator-run"),
        pytest.param("a___b", "a-b", id="three-underscores"),
        pytest.param("a__b.c--d", "a__b.c--d", id="allowed-separators"),
        pytest.param("-Svc-", "svc", id="separators-at-the-ends"),
        pytest.param("__", None, id="nothing-left"),
        pytest.param("日本", None, id="no-ascii"),
    ],
)
def test_repository_component_for(name: str, expected: str | None) -> None:
    assert repository_component_for(name) == expected


def test_the_repository_comes_from_placeholders_in_lower_case(rule_runner: RuleRunner) -> None:
    build = _service_build().replace('name="api"', 'name="My_Svc"')
    rule_runner.write_files({"services/Api/BUILD": build})
    target = rule_runner.get_target(Address("services/Api", target_name="My_Svc"))
    field = target[EsbImageRepositoryField]
    assert field.image_repository(DEFAULT_REPOSITORY) == "my_svc"
    assert field.image_repository("{parent_directory}/{directory}-{name}") == "services/api-my_svc"
    assert field.image_repository("x/{full_directory}") == "x/services/api"


def test_a_repository_that_fills_in_to_no_name_names_the_field_and_the_fix(
    rule_runner: RuleRunner,
) -> None:
    build = _service_build().replace('name="api"', 'name="_svc"')
    rule_runner.write_files({"services/api/BUILD": build})
    field = rule_runner.get_target(Address("services/api", target_name="_svc"))[
        EsbImageRepositoryField
    ]
    with pytest.raises(RepositoryNameError) as exc:
        field.image_repository(DEFAULT_REPOSITORY)
    assert str(exc.value) == (
        "The `repository` field of the target services/api:_svc is unset, so it comes from "
        "`[esb-registries].default_repository`, which is '{name}', which names the image of "
        "services/api:_svc '_svc': not an OCI repository name (the component(s) '_svc' are not "
        "lower-case letters and digits, separated by '.', '_', '__' or '-', with '/' between "
        'components).\n\nFix: set the field, e.g. `repository="svc"`, or rename the target (or '
        "its directory)."
    )
    # At the root, `{directory}` is empty.
    root = EsbImageRepositoryField(None, Address("", target_name="svc"))
    with pytest.raises(RepositoryNameError, match="names the image of //:svc 'x/'"):
        root.image_repository("x/{directory}")


def test_images_are_dated_the_epoch_unless_a_default_asks_for_the_commit(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files({"services/api/BUILD": _service_build()})
    api = Address("services/api", target_name="api")
    assert rule_runner.get_target(api)[EsbImageCreatedField].value == "epoch"
    rule_runner.write_files(
        {
            "services/BUILD": (
                "__defaults__({(esb_base_image, esb_service_image): " 'dict(created="commit")})\n'
            )
        }
    )
    assert rule_runner.get_target(api)[EsbImageCreatedField].from_commit


def test_an_unknown_creation_time_names_the_values(rule_runner: RuleRunner) -> None:
    message = _load_error(rule_runner, _service_build(created='"now"'))
    assert (
        "The `created` field of the target services/api:api is 'now', not one of 'epoch', "
        "'commit'.\n\nFix: set `created=\"epoch\"` (the default: 1970-01-01) or "
        '`created="commit"` (the time of the commit checked out).'
    ) in message


def test_labels_is_a_deprecated_name_of_image_labels(
    rule_runner: RuleRunner, caplog: pytest.LogCaptureFixture
) -> None:
    target_types._warned_renames.clear()
    rule_runner.write_files(
        {
            "base/BUILD": (
                'esb_base_image(name="old", packages=["python3"], labels={"team": "core"})\n'
                'esb_base_image(name="new", packages=["python3"], image_labels={"team": "core"})\n'
            )
        }
    )
    old = rule_runner.get_target(Address("base", target_name="old"))
    new = rule_runner.get_target(Address("base", target_name="new"))
    assert image_labels(old) == image_labels(new) == FrozenDict({"team": "core"})
    EsbBaseImageTarget({"packages": ["python3"], "labels": {"a": "b"}}, old.address)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "once per target"
    assert "base:old sets `labels`, the former name of `image_labels`" in warnings[0]
    assert "Rename it to `image_labels`" in warnings[0]


def test_a_field_set_under_both_names_is_refused(rule_runner: RuleRunner) -> None:
    message = _load_error(rule_runner, _service_build(labels="{}", image_labels='{"a": "b"}'))
    assert "services/api:api sets both `labels` and `image_labels`" in message
    assert "Fix: remove `labels`" in message
