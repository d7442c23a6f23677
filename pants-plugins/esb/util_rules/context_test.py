from __future__ import annotations

import os

import pytest

from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import context, dependencies
from esb.util_rules.context import ServiceContext, ServiceContextRequest, is_junk, looks_like_secret
from pants.core.target_types import FileTarget
from pants.core.util_rules import source_files
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.testutil.rule_runner import RuleRunner

API = Address("services/api", target_name="api")
PRIVATE_KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *context.rules(),
            *dependencies.rules(),
            *source_files.rules(),
            QueryRule(ServiceContext, [ServiceContextRequest]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget, FileTarget],
    )
    runner.write_files(
        {
            "base/BUILD": 'esb_base_image(name="esb-service-base", packages=["python3"])\n',
            "services/api/pyproject.toml": "",
            "services/api/uv.lock": "",
            "services/api/src/esb_api/app.py": "",
            "shared/BUILD": 'file(name="shared", source="util.py")\n',
            "shared/util.py": "",
        }
    )
    return runner


def write_service(rule_runner: RuleRunner, **fields: str) -> None:
    extra = "".join(f", {name}={value}" for name, value in fields.items())
    rule_runner.write_files(
        {
            "services/api/BUILD": (
                f'esb_service_image(name="api", base="//base:esb-service-base", command=["python"]{extra})\n'
            )
        }
    )


def service_context(rule_runner: RuleRunner) -> ServiceContext:
    return rule_runner.request(ServiceContext, [ServiceContextRequest(API)])


def test_a_clean_service_ships_its_files_without_junk_or_tests(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/api/src/esb_api/__pycache__/app.cpython-311.pyc": "",
            "services/api/src/esb_api/app.py.orig": "",
            "services/api/src/.mypy_cache/x.json": "",
            "services/api/src/esb_api/test_app.py": "",
            "services/api/src/tests/fixture.json": "",
            "services/api/src/esb_api/static/index.html": "",
        }
    )
    write_service(rule_runner, sources='["pyproject.toml", "uv.lock", "src/**"]')

    result = service_context(rule_runner)

    assert result.violations == ()
    assert result.shipped_files == (
        "services/api/pyproject.toml",
        "services/api/src/esb_api/app.py",
        "services/api/src/esb_api/static/index.html",
        "services/api/uv.lock",
    )


def test_ship_tests_keeps_the_tests(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"services/api/src/esb_api/test_app.py": ""})
    write_service(rule_runner, ship_tests="True")
    assert "services/api/src/esb_api/test_app.py" in service_context(rule_runner).shipped_files


def test_an_explicit_dependency_outside_is_named(rule_runner: RuleRunner) -> None:
    write_service(rule_runner, dependencies='["//shared:shared"]')

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "shared:shared"
    assert "(declared in `dependencies`) on a target outside services/api/" in violation.reason
    assert "remove `shared:shared` from the target's `dependencies`" in violation.fix


def test_the_base_and_targets_inside_the_directory_are_allowed(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"services/api/data/BUILD": 'file(name="data", source="d.txt")\n', "services/api/data/d.txt": ""}
    )
    write_service(rule_runner, dependencies='["//base:esb-service-base", "./data:data"]')
    assert service_context(rule_runner).violations == ()


@pytest.mark.parametrize("glob", ["../../shared/util.py", "/etc/passwd", "!../x", "src/../../y"])
def test_a_source_glob_leaving_the_directory_fails_when_the_target_is_read(
    rule_runner: RuleRunner, glob: str
) -> None:
    write_service(rule_runner, sources=f'["pyproject.toml", "uv.lock", "{glob}"]')
    with pytest.raises(ExecutionError) as error:
        rule_runner.get_target(API)
    message = str(error.value)
    assert "The `sources` field of the target services/api:api has glob(s) that leave" in message
    assert repr(glob) in message


@pytest.mark.parametrize(
    "link_target, reason",
    [
        ("../../../../shared/util.py", "which resolves to `shared/util.py`, outside services/api/"),
        ("/etc/hostname", "is a symbolic link to the absolute path `/etc/hostname`"),
    ],
)
def test_a_symbolic_link_leaving_the_directory_is_named(
    rule_runner: RuleRunner, link_target: str, reason: str
) -> None:
    os.symlink(link_target, os.path.join(rule_runner.build_root, "services/api/src/esb_api/leak.py"))
    write_service(rule_runner)

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/esb_api/leak.py"
    assert reason in violation.reason


def test_a_symbolic_link_within_the_directory_is_allowed(rule_runner: RuleRunner) -> None:
    os.symlink("app.py", os.path.join(rule_runner.build_root, "services/api/src/esb_api/alias.py"))
    write_service(rule_runner)
    assert service_context(rule_runner).violations == ()


def test_a_linked_directory_leaving_the_service_is_named(rule_runner: RuleRunner) -> None:
    os.symlink("../../../shared", os.path.join(rule_runner.build_root, "services/api/src/shared"))
    write_service(rule_runner, sources='["pyproject.toml", "uv.lock", "src/**/*.py"]')

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/shared"


def test_secrets_fail_unless_allowed(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/api/src/.env": "DATABASE_PASSWORD=hunter2\n",
            "services/api/src/.env.example": "DATABASE_PASSWORD=\n",
            "services/api/src/certs/server.pem": PRIVATE_KEY_PEM,
        }
    )
    write_service(rule_runner, sources='["pyproject.toml", "uv.lock", "src/**"]')

    violations = service_context(rule_runner).violations

    assert [(v.path, v.reason) for v in violations] == [
        ("services/api/src/.env", "looks like a secret: its name matches a secret file's (`.env`)"),
        (
            "services/api/src/certs/server.pem",
            "looks like a secret: it holds a private key (`-----BEGIN ... PRIVATE KEY-----`)",
        ),
    ]
    assert 'allowed_secrets=["src/.env"]' in violations[0].fix

    write_service(
        rule_runner,
        sources='["pyproject.toml", "uv.lock", "src/**"]',
        allowed_secrets='["src/.env", "src/certs/*.pem"]',
    )
    assert service_context(rule_runner).violations == ()


@pytest.mark.parametrize(
    "path, junk",
    [
        ("src/a/__pycache__/m.cpython-311.pyc", True),
        ("src/a/.git/config", True),
        ("src/a.egg-info/PKG-INFO", True),
        ("src/a/m.py~", True),
        ("src/a/tests/test_m.py", True),
        ("src/a/conftest.py", True),
        ("src/a/m.py", False),
        ("src/a/testing.py", False),
    ],
)
def test_is_junk(path: str, junk: bool) -> None:
    assert is_junk(path, ship_tests=False) is junk


@pytest.mark.parametrize(
    "name, content, secret",
    [
        ("id_ed25519", b"", True),
        ("id_ed25519.pub", b"ssh-ed25519 AAAA", False),
        (".env.production", b"", True),
        (".env.sample", b"", False),
        ("ca.pem", b"-----BEGIN CERTIFICATE-----", False),
        ("key.txt", b"-----BEGIN RSA PRIVATE KEY-----", True),
        ("gcp-credentials.json", b"{}", True),
    ],
)
def test_looks_like_secret(name: str, content: bytes, secret: bool) -> None:
    assert (looks_like_secret(f"src/{name}", content) is not None) is secret
