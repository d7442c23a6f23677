from __future__ import annotations

import textwrap

import pytest
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.util_rules import source_files
from pants.engine.addresses import Address, Addresses
from pants.engine.fs import Digest, DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.engine.target import DependenciesRequest, WrappedTarget, WrappedTargetRequest
from pants.testutil.rule_runner import RuleRunner

from esb.target_types import EsbBaseImageTarget, EsbImageDependenciesField, EsbServiceImageTarget
from esb.util_rules import context, dependencies, workspace
from esb.util_rules.context import ServiceContext, ServiceContextRequest
from esb.util_rules.workspace import (
    ServiceWorkspace,
    ServiceWorkspaceRequest,
    ancestors,
    glob_matches,
    is_member,
    workspace_lock_groups,
)

A = Address("repo/services/a", target_name="a")
B = Address("repo/services/b", target_name="b")

ROOT_PYPROJECT = (
    '[tool.uv.workspace]\nmembers = ["services/*", "libs/*"]\nexclude = ["services/own"]\n'
)

# As `uv lock` writes it for the workspace below (hashes left out: nothing here reads them).
LOCK = textwrap.dedent(
    """\
    version = 1
    requires-python = "==3.11.*"

    [manifest]
    members = ["core", "shared", "svc-a", "svc-b"]

    [[package]]
    name = "core"
    version = "1.0"
    source = { editable = "libs/core" }

    [[package]]
    name = "idna"
    version = "3.10"
    source = { registry = "https://pypi.org/simple" }

    [[package]]
    name = "shared"
    version = "1.0"
    source = { editable = "libs/shared" }
    dependencies = [{ name = "core" }, { name = "six" }]

    [[package]]
    name = "six"
    version = "1.17.0"
    source = { registry = "https://pypi.org/simple" }

    [[package]]
    name = "svc-a"
    version = "1.0"
    source = { virtual = "services/a" }
    dependencies = [{ name = "shared" }, { name = "idna" }]

    [[package]]
    name = "svc-b"
    version = "1.0"
    source = { virtual = "services/b" }
    dependencies = [{ name = "six" }]
    """
)


def member_pyproject(name: str, dependencies: list[str]) -> str:
    return (
        f'[project]\nname = "{name}"\nversion = "1.0"\nrequires-python = "==3.11.*"\n'
        f"dependencies = {dependencies!r}\n".replace("'", '"')
    )


def service_build(name: str) -> str:
    return f'esb_service_image(name="{name}", base="//base:esb-service-base", command=["a"])\n'


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *context.rules(),
            *dependencies.rules(),
            *source_files.rules(),
            QueryRule(ServiceWorkspace, [ServiceWorkspaceRequest]),
            QueryRule(ServiceContext, [ServiceContextRequest]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(Addresses, [DependenciesRequest]),
        ],
        target_types=[EsbBaseImageTarget, EsbServiceImageTarget, FileTarget, FilesGeneratorTarget],
    )
    runner.write_files(
        {
            "base/BUILD": 'esb_base_image(name="esb-service-base", packages=["python3"])\n',
            "repo/BUILD": 'files(name="uv-workspace", sources=["pyproject.toml", "uv.lock"])\n',
            "repo/pyproject.toml": ROOT_PYPROJECT,
            "repo/uv.lock": LOCK,
            "repo/README.md": "not admitted",
            "repo/services/a/BUILD": service_build("a"),
            "repo/services/a/pyproject.toml": member_pyproject("svc-a", ["shared", "idna"]),
            "repo/services/a/src/a/__init__.py": "",
            "repo/services/b/BUILD": service_build("b"),
            "repo/services/b/pyproject.toml": member_pyproject("svc-b", ["six"]),
            "repo/libs/shared/BUILD": 'files(name="shared", sources=["**/*"])\n',
            "repo/libs/shared/pyproject.toml": member_pyproject("shared", ["core", "six"]),
            "repo/libs/shared/shared.py": "X = 1\n",
            "repo/libs/shared/__pycache__/shared.cpython-311.pyc": "junk",
            "repo/libs/core/pyproject.toml": member_pyproject("core", []),
            "repo/libs/core/core.py": "",
            "repo/libs/unused/pyproject.toml": member_pyproject("unused", []),
            "repo/libs/unused/unused.py": "",
        }
    )
    return runner


def files_of(rule_runner: RuleRunner, digest: Digest) -> list[str]:
    return sorted(c.path for c in rule_runner.request(DigestContents, [digest]))


def request_workspace(rule_runner: RuleRunner, address: Address = A) -> ServiceWorkspace:
    return rule_runner.request(ServiceWorkspace, [ServiceWorkspaceRequest(address)])


def failure(rule_runner: RuleRunner, address: Address = A) -> str:
    with pytest.raises(ExecutionError) as error:
        request_workspace(rule_runner, address)
    return str(error.value)


def test_globs_match_as_uv_matches_members() -> None:
    assert glob_matches("services/*", "services/a")
    assert not glob_matches("services/*", "services/a/sub")
    assert glob_matches("services/**", "services/a/sub")
    assert glob_matches("./libs/shared/", "libs/shared")
    assert is_member("services/a", ["services/*"], ["services/own"])
    assert not is_member("services/own", ["services/*"], ["services/own"])
    assert ancestors("repo/services/a") == ("repo/services", "repo", "")


def test_a_member_takes_the_root_files_and_the_members_it_installs(
    rule_runner: RuleRunner,
) -> None:
    member = request_workspace(rule_runner).member
    assert member is not None
    assert (member.root, member.directory, member.package) == ("repo", "services/a", "svc-a")
    assert member.local_packages == ("libs/core", "libs/shared")
    assert member.lock_path == "repo/uv.lock"
    # The check reads every member's pyproject.toml; the image takes nothing of `unused`.
    assert files_of(rule_runner, member.lock_digest) == [
        "libs/core/core.py",
        "libs/core/pyproject.toml",
        "libs/shared/BUILD",
        "libs/shared/pyproject.toml",
        "libs/shared/shared.py",
        "libs/unused/pyproject.toml",
        "pyproject.toml",
        "services/a/BUILD",
        "services/a/pyproject.toml",
        "services/a/src/a/__init__.py",
        "services/b/pyproject.toml",
        "uv.lock",
    ]
    # The venv layer is keyed by these alone: never by the root's lock.
    assert files_of(rule_runner, member.packages_digest) == [
        "libs/core/core.py",
        "libs/core/pyproject.toml",
        "libs/shared/BUILD",
        "libs/shared/pyproject.toml",
        "libs/shared/shared.py",
    ]


def test_a_member_without_local_packages_has_no_package_files(rule_runner: RuleRunner) -> None:
    member = request_workspace(rule_runner, B).member
    assert member is not None and member.local_packages == ()
    assert files_of(rule_runner, member.packages_digest) == []


def test_a_service_outside_any_workspace_is_no_member(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {"solo/BUILD": service_build("solo"), "solo/pyproject.toml": "", "solo/uv.lock": ""}
    )
    assert request_workspace(rule_runner, Address("solo", target_name="solo")).member is None


def test_an_excluded_service_with_its_own_lock_keeps_it(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "repo/services/own/BUILD": service_build("own"),
            "repo/services/own/pyproject.toml": member_pyproject("own", []),
            "repo/services/own/uv.lock": "",
        }
    )
    own = Address("repo/services/own", target_name="own")
    assert request_workspace(rule_runner, own).member is None


def test_a_member_with_its_own_lock_is_refused(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"repo/services/a/uv.lock": ""})
    message = failure(rule_runner)
    assert "The service repo/services/a:a has its own repo/services/a/uv.lock" in message
    assert "uv uses the workspace's lock, repo/uv.lock" in message
    assert "delete repo/services/a/uv.lock and run `pants esb-lock repo/services/a:a`" in message
    assert 'add "services/a" to `exclude`' in message


def test_a_service_in_the_workspace_but_not_a_member_is_refused(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "repo/tools/x/BUILD": service_build("x"),
            "repo/tools/x/pyproject.toml": member_pyproject("x", []),
        }
    )
    message = failure(rule_runner, Address("repo/tools/x", target_name="x"))
    assert "inside the uv workspace rooted at repo, but is not one of its members" in message
    assert 'add "tools/x" to `members` in `[tool.uv.workspace]` of repo/pyproject.toml' in message
    assert "`pants esb-lock repo/tools/x:x`" in message


def test_depending_on_the_root_project_is_refused(rule_runner: RuleRunner) -> None:
    lock = LOCK.replace('source = { editable = "libs/core" }', 'source = { editable = "." }')
    rule_runner.write_files({"repo/uv.lock": lock})
    message = failure(rule_runner)
    assert "depends on the project at repo (in repo/uv.lock)" in message
    assert "move that project's code into a member directory" in message


def test_a_local_package_that_is_no_member_is_refused(rule_runner: RuleRunner) -> None:
    lock = LOCK.replace(
        'source = { editable = "libs/core" }', 'source = { directory = "vendor/core" }'
    )
    rule_runner.write_files({"repo/uv.lock": lock})
    message = failure(rule_runner)
    assert "installs the local package repo/vendor/core (in repo/uv.lock)" in message
    assert 'add "vendor/core" to `members`' in message


def test_an_unowned_workspace_lock_is_refused(rule_runner: RuleRunner) -> None:
    rule_runner.write_files({"repo/BUILD": ""})
    message = failure(rule_runner)
    assert "No target owns repo/uv.lock" in message
    assert 'files(name="uv-workspace", sources=["pyproject.toml", "uv.lock"])' in message


def test_a_member_depends_on_the_owners_of_what_it_takes(rule_runner: RuleRunner) -> None:
    target = rule_runner.request(
        WrappedTarget, [WrappedTargetRequest(A, description_of_origin="test")]
    ).target
    addresses = rule_runner.request(
        Addresses, [DependenciesRequest(target[EsbImageDependenciesField])]
    )
    assert Address("repo", target_name="uv-workspace", relative_file_path="uv.lock") in addresses
    assert Address("repo/libs/shared", target_name="shared", relative_file_path="shared.py") in (
        addresses
    )
    assert not any(a.spec_path == "repo/libs/unused" for a in addresses)


def test_the_context_rule_admits_the_workspace_and_refuses_the_rest(
    rule_runner: RuleRunner,
) -> None:
    assert rule_runner.request(ServiceContext, [ServiceContextRequest(A)]).violations == ()
    rule_runner.write_files(
        {
            "repo/services/a/BUILD": service_build("a").replace(
                'command=["a"]', 'command=["a"], dependencies=["//repo:README.md"]'
            ),
            "repo/BUILD": 'files(name="uv-workspace", sources=["pyproject.toml", "uv.lock"])\n'
            'file(name="README.md", source="README.md")\n',
            "repo/libs/shared/.env": "TOKEN=x",
        }
    )
    violations = rule_runner.request(ServiceContext, [ServiceContextRequest(A)]).violations
    assert [v.path for v in violations] == ["repo:README.md", "repo/libs/shared/.env"]
    assert "on a target outside repo/services/a/" in violations[0].reason
    assert "looks like a secret" in violations[1].reason


def test_each_workspace_is_locked_once(rule_runner: RuleRunner) -> None:
    a, b = (request_workspace(rule_runner, address).member for address in (A, B))
    assert a is not None and b is not None
    groups = workspace_lock_groups({B: b, A: a})
    assert list(groups) == ["repo"] and groups["repo"] == (a, b)


def test_rules_register() -> None:
    assert workspace.rules()
