from __future__ import annotations

import pytest
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.option_util import create_subsystem
from pants.testutil.rule_runner import RuleRunner

from esb.subsystems.registries import (
    RegistriesSubsystem,
    RegistrySettings,
    RegistrySettingsError,
    helper_search_path,
    parse_registry_settings,
)
from esb.util_rules import upstream
from esb.util_rules.platform import BasePlatform, BasePlatformError
from esb.util_rules.upstream import (
    CA_BUNDLE_SETTING,
    INSECURE_SETTING,
    RegistryConnection,
    UpstreamImageRequest,
    pull_argv,
    pull_failure_message,
)
from esb_contract import commands, flags
from esb_contract.commands import read_argv
from esb_contract.messages import USER_ERROR

REFERENCE = "127.0.0.1:5000/esb/base@sha256:" + "ab" * 32
OPTION = "[esb-registries].registries"


def test_pull_argv_without_settings() -> None:
    invocation = read_argv(pull_argv(REFERENCE, "linux/amd64", RegistryConnection()))
    assert invocation.name == commands.PULL_IMAGE
    assert invocation.value(flags.REFERENCE) == REFERENCE
    assert invocation.value(flags.PLATFORM) == "linux/amd64"
    # The pants.toml settings that the tool's messages name as the fix.
    assert invocation.value(flags.CA_BUNDLE_SETTING) == CA_BUNDLE_SETTING
    assert invocation.value(flags.INSECURE_SETTING) == INSECURE_SETTING
    for flag in (flags.DOCKER_CONFIG, flags.REGISTRY_CA, flags.MIRROR, flags.INSECURE_REGISTRY):
        assert flag not in invocation.values


def test_pull_argv_with_every_setting() -> None:
    connection = RegistryConnection(
        registries=(
            RegistrySettings("127.0.0.1:5000", ca_bundle="certs/ca.pem"),
            RegistrySettings(
                "docker.io", mirrors=("https://mirror.example", "http://10.0.0.1:5000")
            ),
            RegistrySettings("10.0.0.1:5000", insecure=True),
        ),
        docker_config="~/.docker/ci.json",
        credential_helper_path="/opt/helpers:/usr/bin",
    )
    invocation = read_argv(pull_argv(REFERENCE, "linux/arm64/v8", connection))
    assert invocation.value(flags.PLATFORM) == "linux/arm64/v8"
    assert invocation.value(flags.DOCKER_CONFIG) == "~/.docker/ci.json"
    assert invocation.value(flags.CREDENTIAL_HELPER_PATH) == "/opt/helpers:/usr/bin"
    assert invocation.get(flags.REGISTRY_CA) == ("127.0.0.1:5000=certs/ca.pem",)
    # In the configured order: the tool tries the mirrors in it.
    assert invocation.get(flags.MIRROR) == (
        "docker.io=https://mirror.example",
        "docker.io=http://10.0.0.1:5000",
    )
    assert invocation.get(flags.INSECURE_REGISTRY) == ("10.0.0.1:5000",)


def test_registry_settings_are_checked_and_sorted() -> None:
    settings = parse_registry_settings(
        {
            "registry.example:5000": {
                "ca_bundle": "/etc/ca.pem",
                "mirrors": ["https://m.example/"],
            },
            "docker.io": {"insecure": False},
        },
        OPTION,
    )
    assert settings == (
        RegistrySettings("docker.io"),
        RegistrySettings("registry.example:5000", "/etc/ca.pem", False, ("https://m.example",)),
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param({"https://r.example": {}}, "does not name a registry", id="url-as-name"),
        pytest.param(
            {"r.example": {"ca": "x.pem"}},
            "unknown settings 'ca'; known: ca_bundle, insecure, mirrors",
            id="unknown",
        ),
        pytest.param(
            {"r.example": {"insecure": "yes"}}, "`insecure` must be true or false", id="insecure"
        ),
        pytest.param(
            {"r.example": {"mirrors": "https://m"}}, "`mirrors` must be a list", id="mirrors-str"
        ),
        pytest.param(
            {"r.example": {"mirrors": ["m.example"]}},
            "`mirrors` must be a list",
            id="mirror-no-scheme",
        ),
        pytest.param({"r.example": "insecure"}, "not a table of settings", id="not-a-table"),
    ],
)
def test_bad_registry_settings_name_the_entry_and_the_fix(value: dict, expected: str) -> None:
    with pytest.raises(RegistrySettingsError) as error:
        parse_registry_settings(value, OPTION)
    message = str(error.value)
    assert f"of `{OPTION}`" in message and expected in message
    assert "Fix: write each entry as" in message


def test_helper_search_path() -> None:
    assert helper_search_path((), "/usr/bin:/bin") is None
    assert (
        helper_search_path(("/opt/helpers", "<PATH>"), "/usr/bin:/bin")
        == "/opt/helpers:/usr/bin:/bin"
    )


@pytest.mark.parametrize(
    "option, env, expected",
    [
        pytest.param(None, None, None, id="tool-default"),
        pytest.param(None, "/ci/docker/", "/ci/docker/config.json", id="DOCKER_CONFIG"),
        pytest.param("~/.docker/ci.json", "/ci/docker", "~/.docker/ci.json", id="option-wins"),
    ],
)
def test_docker_config_path(option: str | None, env: str | None, expected: str | None) -> None:
    subsystem = create_subsystem(
        RegistriesSubsystem, docker_config=option, registries={}, credential_helper_search_path=[]
    )
    assert subsystem.docker_config_path(env) == expected


def test_relative_docker_config_is_refused() -> None:
    subsystem = create_subsystem(
        RegistriesSubsystem,
        docker_config="docker.json",
        registries={},
        credential_helper_search_path=[],
    )
    with pytest.raises(RegistrySettingsError, match="relative path"):
        subsystem.docker_config_path(None)


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(rules=[*upstream.rules(), QueryRule(RegistryConnection, [])])


def test_connection_holds_no_secret_and_only_what_is_configured(rule_runner: RuleRunner) -> None:
    """What reaches the pull's key: settings and paths, never a secret, nor Pants' PATH or HOME
    unless asked for."""
    rule_runner.set_options(
        [
            '--esb-registries-registries={"127.0.0.1:5000": {"ca_bundle": "certs/ca.pem"}}',
            "--esb-registries-credential-helper-search-path=['/opt/helpers', '<PATH>']",
        ],
        env={"DOCKER_CONFIG": "/home/ci/.docker", "PATH": "/usr/bin:/bin", "HOME": "/home/ci"},
        env_inherit={"PATH"},
    )
    connection = rule_runner.request(RegistryConnection, [])
    assert connection == RegistryConnection(
        registries=(RegistrySettings("127.0.0.1:5000", ca_bundle="certs/ca.pem"),),
        docker_config="/home/ci/.docker/config.json",
        credential_helper_path="/opt/helpers:/usr/bin:/bin",
    )


def test_default_connection_is_the_same_on_every_machine(rule_runner: RuleRunner) -> None:
    rule_runner.set_options([], env={"PATH": "/home/me/bin:/usr/bin", "HOME": "/home/me"})
    assert rule_runner.request(RegistryConnection, []) == RegistryConnection()


def test_bad_registry_settings_fail_the_build(rule_runner: RuleRunner) -> None:
    rule_runner.set_options(['--esb-registries-registries={"r.example": {"insecure": "yes"}}'])
    with pytest.raises(ExecutionError, match="`insecure` must be true or false"):
        rule_runner.request(RegistryConnection, [])


def test_platform_from_image_facts() -> None:
    facts = {
        "architecture": "amd64",
        "glibc_version": "2.36",
        "interpreter": "/usr/local/bin/python3.12",
        "python_version": "3.12.7",
    }
    platform = BasePlatform.from_facts(facts, where="the upstream image python:3.12 of base:b")
    assert platform == BasePlatform("3.12.7", "2.36", "amd64", "/usr/local/bin/python3.12")
    assert platform.uv_python_platform == "x86_64-manylinux_2_36"
    with pytest.raises(
        BasePlatformError, match=r"python:3.12 of base:b is for the architecture 's390x'"
    ):
        BasePlatform.from_facts(
            {**facts, "architecture": "s390x"}, where="the upstream image python:3.12 of base:b"
        )


def test_pull_failure_names_the_target_and_field() -> None:
    request = UpstreamImageRequest("python:3.12", "linux/amd64", "base:b")
    stderr = "'python:3.12' names no digest. Pin it as `python:3.12@sha256:<digest>`.\n"
    assert pull_failure_message(request, USER_ERROR, stderr) == (
        "Cannot pull the image of the `upstream` field of the target base:b (python:3.12, "
        "linux/amd64):\n\n'python:3.12' names no digest. Pin it as `python:3.12@sha256:<digest>`."
    )
