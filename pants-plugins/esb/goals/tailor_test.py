from __future__ import annotations

import logging

import pytest
from pants.core.goals import tailor as core_tailor
from pants.core.goals.tailor import PutativeTarget, PutativeTargets
from pants.engine.addresses import Address
from pants.engine.rules import QueryRule
from pants.source import source_root
from pants.testutil.rule_runner import RuleRunner

from esb.goals import tailor
from esb.goals.tailor import PutativeEsbServiceImageTargetsRequest
from esb.repository_names import DEFAULT_REPOSITORY
from esb.target_types import EsbBaseImageTarget, EsbImageRepositoryField, EsbServiceImageTarget

_BASE_BUILD = 'esb_base_image(name="esb-service-base", packages=["python3"])\n'
_SERVICE_FILES = {"pyproject.toml": "[project]\nname = 'x'\n", "uv.lock": "version = 1\n"}


def _base(directory: str) -> dict[str, str]:
    return {
        f"{directory}/BUILD": _BASE_BUILD,
        f"{directory}/packages.lock.json": "{}",
        f"{directory}/ensure_ca_trust.sh": "",
        f"{directory}/entrypoint.sh": "",
    }


def _service(directory: str, *files: str) -> dict[str, str]:
    return {f"{directory}/{name}": _SERVICE_FILES[name] for name in files}


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[
            *core_tailor.rules(),
            *source_root.rules(),
            *tailor.rules(),
            QueryRule(PutativeTargets, [PutativeEsbServiceImageTargetsRequest]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget],
    )


def _putative(rule_runner: RuleRunner, *dirs: str) -> list[PutativeTarget]:
    return list(rule_runner.request(PutativeTargets, [PutativeEsbServiceImageTargetsRequest(dirs)]))


def test_new_service_gets_an_image_on_the_only_base(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {**_base("base"), **_service("services/billing", "pyproject.toml", "uv.lock")}
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert (target.path, target.name, target.type_alias) == (
        "services/billing",
        "billing",
        "esb_service_image",
    )
    assert dict(target.kwargs) == {"base": "//base:esb-service-base", "user": "esb"}
    assert target.triggering_sources == ("pyproject.toml", "uv.lock")
    assert "`command` (required)" in " ".join(target.comments)


def test_the_one_main_module_under_src_gives_the_command(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
            "services/billing/src/esb_billing/__main__.py": "",
            "services/billing/src/esb_billing/app.py": "",
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert dict(target.kwargs) == {
        "base": "//base:esb-service-base",
        "user": "esb",
        "command": ("python", "-m", "esb_billing"),
    }
    assert target.comments == ()


def test_the_one_main_package_of_a_flat_layout_gives_the_command(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
            "services/billing/app/__main__.py": "",
            "services/billing/app/main.py": "",
            # Neither tests nor a nested package's `__main__` start the service.
            "services/billing/tests/__main__.py": "",
            "services/billing/app/cli/__main__.py": "",
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert target.kwargs["command"] == ("python", "-m", "app")
    # The default `sources` (`src/**/*.py`) would ship none of the code.
    assert target.kwargs["sources"] == ("pyproject.toml", "uv.lock", "app/**")


@pytest.mark.parametrize(
    "code, sources",
    [
        pytest.param(["src/billing/app.py", "tests/test_app.py"], None, id="src-layout"),
        pytest.param(["tests/test_app.py"], None, id="tests-only"),
        pytest.param(
            ["manage.py", "site/settings.py", "polls/models.py", "tests/test_polls.py"],
            ("pyproject.toml", "uv.lock", "*.py", "polls/**", "site/**"),
            id="flat-with-top-level-module",
        ),
    ],
)
def test_a_flat_layout_gets_sources_that_select_its_code(
    rule_runner: RuleRunner, code: list[str], sources: tuple[str, ...] | None
) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
            **{f"services/billing/{path}": "" for path in code},
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert target.kwargs.get("sources") == sources


def test_two_main_packages_leave_the_command_to_the_user(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
            "services/billing/app/__main__.py": "",
            "services/billing/src/billing/__main__.py": "",
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert "command" not in dict(target.kwargs)
    assert "`command` (required)" in " ".join(target.comments)


_BUILT_PROJECT = """\
[build-system]
requires = ["hatchling==1.27.0"]
build-backend = "hatchling.build"

[project]
name = "billing"
version = "1.0"
"""


@pytest.mark.parametrize(
    "pyproject, command",
    [
        pytest.param(
            _BUILT_PROJECT + '[project.scripts]\nbilling-serve = "billing.cli:main"\n',
            ("billing-serve",),
            id="one-script-of-a-built-project",
        ),
        pytest.param(
            _BUILT_PROJECT
            + '[project.scripts]\nbilling-serve = "billing.cli:main"\nbilling-admin = "b:a"\n',
            ("python", "-m", "billing"),
            id="two-scripts-fall-back-to-the-main-package",
        ),
        pytest.param(
            # Without a `[build-system]` the project is not installed: its scripts do not exist.
            '[project]\nname = "billing"\n[project.scripts]\nbilling-serve = "billing.cli:main"\n',
            ("python", "-m", "billing"),
            id="script-of-an-unbuilt-project",
        ),
        pytest.param("[project\n", ("python", "-m", "billing"), id="pyproject-not-toml"),
    ],
)
def test_the_one_console_script_of_a_built_project_gives_the_command(
    rule_runner: RuleRunner, pyproject: str, command: tuple[str, ...]
) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            "services/billing/pyproject.toml": pyproject,
            "services/billing/uv.lock": "version = 1\n",
            "services/billing/billing/__main__.py": "",
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert target.kwargs["command"] == command


@pytest.mark.parametrize(
    "accounts, user",
    [
        pytest.param('["svc:10002", "esb:10001"]', "svc", id="the-first-account"),
        pytest.param("[]", None, id="no-account"),
    ],
)
def test_the_image_runs_as_the_bases_service_account(
    rule_runner: RuleRunner, accounts: str, user: str | None
) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            "base/BUILD": (
                'esb_base_image(name="esb-service-base", packages=["python3"], '
                f"service_accounts={accounts})\n"
            ),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
        }
    )
    [target] = _putative(rule_runner, "base", "services/billing")
    assert target.kwargs.get("user") == user
    assert ("the image runs as root" in " ".join(target.comments)) == (user is None)


@pytest.mark.parametrize(
    "root_patterns, rootless",
    [
        pytest.param(["/services/*/src"], "services/billing/app, services/billing/tests", id="src"),
        pytest.param(["/services/*/src", "/services/*/tests"], "services/billing/app", id="tests"),
        pytest.param(["/services/*", "/services/*/src"], None, id="service-directories"),
    ],
)
def test_code_without_a_source_root_is_reported_with_the_fix(
    rule_runner: RuleRunner,
    caplog: pytest.LogCaptureFixture,
    root_patterns: list[str],
    rootless: str | None,
) -> None:
    rule_runner.set_options([f"--source-root-patterns={root_patterns!r}"])
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
            "services/billing/app/main.py": "",
            "services/billing/tests/test_main.py": "",
        }
    )
    with caplog.at_level(logging.WARNING):
        [target] = _putative(rule_runner, "base", "services/billing")
    assert target.name == "billing"
    warnings = [record.getMessage() for record in caplog.records]
    if rootless is None:
        assert warnings == []
        return
    [warning] = warnings
    assert warning.startswith(
        f"The Python code of the service in services/billing has no source root ({rootless})"
    )
    assert 'Fix: in pants.toml, add "/services/*" to `[source].root_patterns`' in warning


def test_service_whose_lock_is_owned_is_left_alone(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            "services/api/BUILD": (
                'esb_service_image(name="api", base="//base:esb-service-base", '
                'command=["python"])\n'
            ),
            **_service("services/api", "pyproject.toml", "uv.lock"),
        }
    )
    assert _putative(rule_runner, "services/api") == []


def test_lock_without_pyproject_is_not_a_service(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({**_base("base"), **_service("tools/x", "uv.lock")})
    assert _putative(rule_runner, "tools/x") == []


@pytest.mark.parametrize(
    "base_files, problem",
    [
        pytest.param({}, "there is no `esb_base_image` target", id="no-base"),
        pytest.param(
            {**_base("base"), **_base("base2")},
            "several `esb_base_image` targets (//base:esb-service-base, "
            "//base2:esb-service-base)",
            id="two-bases",
        ),
    ],
)
def test_no_single_base_proposes_nothing_and_says_why(
    rule_runner: RuleRunner,
    caplog: pytest.LogCaptureFixture,
    base_files: dict[str, str],
    problem: str,
) -> None:
    rule_runner.write_files(
        {**base_files, **_service("services/billing", "pyproject.toml", "uv.lock")}
    )
    with caplog.at_level(logging.WARNING):
        assert _putative(rule_runner, "services/billing") == []
    [warning] = [record.getMessage() for record in caplog.records]
    assert "services/billing" in warning
    assert problem in warning
    assert "by hand with `base=` set" in warning


@pytest.mark.parametrize(
    "directory, name, repository",
    [
        pytest.param("My_Svc", "My_Svc", "my_svc", id="upper-case"),
        pytest.param("svc@2", "svc-2", None, id="character-banned-in-target-names"),
        pytest.param("Svc.v2", "Svc.v2", "svc.v2", id="upper-case-with-dot"),
    ],
)
def test_a_directory_name_that_is_no_repository_gets_a_valid_one(
    rule_runner: RuleRunner, directory: str, name: str, repository: str | None
) -> None:
    service_dir = f"services/{directory}"
    rule_runner.write_files({**_base("base"), **_service(service_dir, "pyproject.toml", "uv.lock")})
    [target] = _putative(rule_runner, "base", service_dir)
    assert (target.path, target.name) == (service_dir, name)
    expected = {"base": "//base:esb-service-base", "user": "esb"}
    if repository:
        expected["repository"] = repository
    assert dict(target.kwargs) == expected
    # What tailor writes loads.
    kwargs = "".join(f", {key}={value!r}" for key, value in target.kwargs.items())
    rule_runner.write_files(
        {f"{service_dir}/BUILD": f'esb_service_image(name="{name}", command=["python"]{kwargs})\n'}
    )
    loaded = rule_runner.get_target(Address(service_dir, target_name=name))
    assert loaded[EsbImageRepositoryField].image_repository(DEFAULT_REPOSITORY) == (
        repository or name
    )


def test_a_directory_name_with_no_letter_or_digit_is_skipped_with_a_warning(
    rule_runner: RuleRunner, caplog: pytest.LogCaptureFixture
) -> None:
    rule_runner.write_files(
        {
            **_base("base"),
            **_service("services/__", "pyproject.toml", "uv.lock"),
            **_service("services/billing", "pyproject.toml", "uv.lock"),
        }
    )
    with caplog.at_level(logging.WARNING):
        targets = _putative(rule_runner, "base", "services/__", "services/billing")
    assert [target.path for target in targets] == ["services/billing"]
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith(
        "Not adding an `esb_service_image` target for the service in services/__: its "
        "directory's name '__' has no ASCII letter or digit"
    )
    assert "Fix: rename the directory, or add the target to services/__/BUILD by hand" in warning
