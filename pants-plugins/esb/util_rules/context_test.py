from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from pants.core.target_types import FileTarget
from pants.core.util_rules import source_files
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.rules import QueryRule
from pants.source.filespec import FilespecMatcher
from pants.testutil.rule_runner import RuleRunner

from esb.target_types import EsbBaseImageTarget, EsbServiceImageTarget
from esb.util_rules import context, dependencies
from esb.util_rules.context import (
    DirectoryScan,
    ServiceContext,
    ServiceContextRequest,
    ignored_by_name,
    is_junk,
    looks_like_secret,
    resolve,
    scan_directory,
)

API = Address("services/api", target_name="api")
PRIVATE_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
)


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
            "services/worker/src/esb_worker/__main__.py": "",
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
        {
            "services/api/data/BUILD": 'file(name="data", source="d.txt")\n',
            "services/api/data/d.txt": "",
        }
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
    os.symlink(
        link_target, os.path.join(rule_runner.build_root, "services/api/src/esb_api/leak.py")
    )
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


def link(rule_runner: RuleRunner, path: str, target: str) -> None:
    os.symlink(target, os.path.join(rule_runner.build_root, path))


def test_a_link_through_a_link_to_a_directory_is_followed_as_the_system_follows_it(
    rule_runner: RuleRunner,
) -> None:
    # As text, `up/..` cancels out and the target stays in services/api/; the system follows
    # `up` to services/api/data first, and `..` climbs from there, out to the worker.
    rule_runner.write_files({"services/api/data/keep.txt": ""})
    link(rule_runner, "services/api/src/esb_api/up", "../../data")
    link(
        rule_runner,
        "services/api/src/esb_api/leak.py",
        "up/../../../services/worker/src/esb_worker/__main__.py",
    )
    write_service(rule_runner)

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/esb_api/leak.py"
    assert violation.reason == (
        "is a symbolic link to `up/../../../services/worker/src/esb_worker/__main__.py`, which "
        "goes through the symbolic link services/api/src/esb_api/up (to `../../data`) and "
        "resolves to `services/worker/src/esb_worker/__main__.py`, outside services/api/"
    )
    assert "`..` after a link to a directory climbs from where that link points" in violation.fix


def test_chains_of_links_and_links_to_directories_inside_are_allowed(
    rule_runner: RuleRunner,
) -> None:
    rule_runner.write_files({"services/api/data/extra.py": ""})
    link(rule_runner, "services/api/src/esb_api/first.py", "second.py")
    link(rule_runner, "services/api/src/esb_api/second.py", "app.py")
    link(rule_runner, "services/api/src/esb_api/data", "../../data")
    link(rule_runner, "services/api/src/esb_api/back.py", "data/../src/esb_api/app.py")
    write_service(rule_runner)

    result = service_context(rule_runner)

    assert result.violations == ()
    assert "services/api/src/esb_api/data/extra.py" in result.shipped_files


def test_a_link_going_through_a_link_outside_is_named_even_if_it_comes_back(
    rule_runner: RuleRunner,
) -> None:
    link(rule_runner, "shared/services", "../services")
    link(
        rule_runner,
        "services/api/src/esb_api/back.py",
        "../../../../shared/services/api/src/esb_api/app.py",
    )
    write_service(rule_runner)

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/esb_api/back.py"
    assert (
        "through the symbolic link shared/services (to `../services`, outside services/api/)"
        in violation.reason
    )


def test_a_selected_link_to_nothing_is_named(rule_runner: RuleRunner) -> None:
    link(rule_runner, "services/api/src/esb_api/gone.py", "generated/gone.py")
    link(rule_runner, "services/api/src/esb_api/not_selected.txt", "nothing.txt")
    write_service(rule_runner)

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/esb_api/gone.py"
    assert violation.reason == (
        "is a symbolic link to `generated/gone.py`, which leads to nothing: "
        "services/api/src/esb_api/generated does not exist"
    )
    assert "Pants skips a link to nothing" in violation.fix


@pytest.mark.parametrize(
    "links, reason",
    [
        (
            {"l1.py": "l2.py", "l2.py": "l1.py"},
            "is a symbolic link to `l2.py`, which goes through the symbolic link "
            "services/api/src/esb_api/l2.py (to `l1.py`) and never ends: the links loop",
        ),
        (
            {"l1.py": "self/app.py", "self": "."},
            "is a symbolic link to `.`, which leads back to services/api/src/esb_api, a "
            "directory that holds it: a loop",
        ),
    ],
    ids=["files", "directory"],
)
def test_a_loop_of_links_is_named_before_pants_reads_the_sources(
    rule_runner: RuleRunner, links: dict[str, str], reason: str
) -> None:
    # Pants' own capture crashes on the first loop, and fails on the second without naming it.
    for name, target in links.items():
        link(rule_runner, f"services/api/src/esb_api/{name}", target)
    write_service(rule_runner)

    result = service_context(rule_runner)

    assert reason in [v.reason for v in result.violations]
    assert all("Pants cannot read a loop of links" in v.fix for v in result.violations)
    assert result.captured is False


def test_an_absolute_link_at_the_end_of_a_chain_names_both_links(rule_runner: RuleRunner) -> None:
    link(rule_runner, "services/api/src/esb_api/a.py", "b.py")
    link(rule_runner, "services/api/src/esb_api/b.py", "/etc/hostname")
    write_service(rule_runner)

    violations = {v.path: v for v in service_context(rule_runner).violations}

    assert violations["services/api/src/esb_api/a.py"].reason == (
        "is a symbolic link to `b.py`, which goes through the symbolic link "
        "services/api/src/esb_api/b.py (to `/etc/hostname`) and leads to the absolute path "
        "`/etc/hostname`"
    )
    assert "Pants refuses absolute links" in violations["services/api/src/esb_api/b.py"].fix


def test_fifos_and_sockets_are_left_out_with_a_warning(
    rule_runner: RuleRunner, caplog: pytest.LogCaptureFixture
) -> None:
    module_dir = Path(rule_runner.build_root, "services/api/src/esb_api")
    os.mkfifo(module_dir / "events.py")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(module_dir / "admin.py"))
    write_service(rule_runner)

    with caplog.at_level(logging.WARNING), server:
        result = service_context(rule_runner)

    assert result.violations == ()
    assert result.shipped_files == (
        "services/api/pyproject.toml",
        "services/api/src/esb_api/app.py",
        "services/api/uv.lock",
    )
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "The image services/api:api leaves out files that its `sources` select" in warning
    assert "services/api/src/esb_api/admin.py is a socket, not a file" in warning
    assert "services/api/src/esb_api/events.py is a FIFO (named pipe), not a file" in warning
    assert "leave it out of `sources` (a `!` glob)" in warning


def test_a_name_that_is_not_utf8_is_named(rule_runner: RuleRunner) -> None:
    build_root = os.fsencode(rule_runner.build_root)
    with open(os.path.join(build_root, b"services/api/src/caf\xe9.py"), "w"):
        pass
    write_service(rule_runner)

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/caf\\xe9.py"
    assert violation.reason == "has a name that is not UTF-8"
    assert "rename the file to a UTF-8 name" in violation.fix


def test_a_compiled_module_without_its_source_is_named(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/api/src/esb_api/legacy.pyc": "",
            "services/api/src/esb_api/app.pyc": "",
            "services/api/src/esb_api/__pycache__/gone.cpython-311.pyc": "",
            "services/api/src/esb_api/test_gone.pyc": "",
        }
    )
    write_service(rule_runner, sources='["pyproject.toml", "uv.lock", "src/**"]')

    (violation,) = service_context(rule_runner).violations

    assert violation.path == "services/api/src/esb_api/legacy.pyc"
    assert "without its source `legacy.py`" in violation.reason
    assert "add the module's source `src/esb_api/legacy.py`" in violation.fix


def scan(tmp_path: Path, includes: list[str], excludes: list[str] = []) -> DirectoryScan:
    matcher = FilespecMatcher(includes, excludes)
    return scan_directory(str(tmp_path), "svc", matcher, includes, ignored_by_name([".*/"]))


def test_the_scan_walks_only_where_the_globs_reach_and_skips_ignored_directories(
    tmp_path: Path,
) -> None:
    (tmp_path / "svc/src/.venv").mkdir(parents=True)
    (tmp_path / "svc/docs").mkdir()
    for directory in ("svc/src/.venv", "svc/docs"):
        os.symlink("loop", tmp_path / directory / "loop")
    os.mkfifo(tmp_path / "svc/src/excluded.py")

    not_reached = scan(tmp_path, ["svc/src/**/*.py"], ["svc/src/excluded.py"])
    assert not_reached == DirectoryScan((), (), True)
    (violation,) = scan(tmp_path, ["svc/**/*.py"]).violations
    assert violation.path == "svc/docs/loop"


def test_the_scan_reaches_directories_by_literal_and_wildcard_components(tmp_path: Path) -> None:
    for directory in ("svc/src/pkg_a", "svc/src/pkg_b", "svc/other"):
        (tmp_path / directory).mkdir(parents=True)
        os.symlink("/etc", tmp_path / directory / "out")

    def reached(includes: list[str]) -> list[str]:
        return sorted(v.path for v in scan(tmp_path, includes).violations)

    assert reached(["svc/src/pkg_a/*"]) == ["svc/src/pkg_a/out"]
    assert reached(["svc/src/pkg_?/*"]) == ["svc/src/pkg_a/out", "svc/src/pkg_b/out"]
    assert reached(["svc/*/pkg_b/*"]) == ["svc/src/pkg_b/out"]
    assert reached(["svc/src/pkg_[a]/*"]) == ["svc/src/pkg_a/out"]
    assert reached(["svc/src/pkg_c/*"]) == []


def test_the_scan_compares_with_the_real_path_of_the_build_root(tmp_path: Path) -> None:
    (tmp_path / "real/svc/src").mkdir(parents=True)
    (tmp_path / "real/svc/src/app.py").write_text("")
    os.symlink("app.py", tmp_path / "real/svc/src/alias.py")
    os.symlink("real", tmp_path / "checkout")

    assert scan(tmp_path / "checkout", ["svc/src/**/*.py"]) == DirectoryScan((), (), True)


def test_a_service_directory_reached_through_a_link_is_named(tmp_path: Path) -> None:
    (tmp_path / "apps/svc/src").mkdir(parents=True)
    (tmp_path / "services").mkdir()
    os.symlink("../apps/svc", tmp_path / "services/svc")
    matcher = FilespecMatcher(["services/svc/src/**/*.py"], [])

    result = scan_directory(
        str(tmp_path), "services/svc", matcher, ["services/svc/src/**/*.py"], ignored_by_name([])
    )

    (violation,) = result.violations
    assert violation.path == "services/svc"
    assert violation.reason == (
        "is reached through the symbolic link services/svc (to `../apps/svc`): its files are "
        "those of apps/svc"
    )
    assert "`dependents` and `--changed-since` would not connect" in violation.fix


def test_resolve_reports_the_links_it_follows(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/file").write_text("")
    os.symlink("dir", tmp_path / "to_dir")
    os.symlink("to_dir/file", tmp_path / "to_file")

    resolution = resolve(str(tmp_path), "to_file")

    assert resolution.real_path == str(tmp_path / "dir/file")
    assert resolution.links == (
        (str(tmp_path / "to_file"), "to_dir/file"),
        (str(tmp_path / "to_dir"), "dir"),
    )
    beyond = resolve(str(tmp_path), "to_file/more/parts")
    assert (beyond.problem, beyond.missing) == ("missing", str(tmp_path / "dir/file/more/parts"))


@pytest.mark.parametrize(
    "name, directory, ignored",
    [
        (".venv", True, True),
        (".env", False, False),
        ("__pycache__", True, True),
        ("src", True, False),
    ],
)
def test_ignored_by_name(name: str, directory: bool, ignored: bool) -> None:
    assert ignored_by_name([".*/", "__pycache__", "/dist/"])(name, directory) is ignored
    assert ignored_by_name([".*/", "!.keep/"])(name, directory) is False


UTF16_KEY = PRIVATE_KEY_PEM


@pytest.mark.parametrize(
    "path, content, secret",
    [
        ("src/prod.env", b"", True),
        ("src/prod.env.example", b"", False),
        ("src/.envrc", b"export A=1", True),
        ("src/.git-credentials", b"", True),
        ("src/.dockerconfigjson", b"{}", True),
        ("src/.docker/config.json", b"{}", True),
        (".docker/config.json", b"{}", True),
        ("src/config.json", b"{}", False),
        ("src/deploy.ppk", b"", True),
        ("src/deploy.txt", b"PuTTY-User-Key-File-3: ssh-ed25519\n", True),
        ("src/.aws/credentials", b"[default]\n", True),
        ("src/.aws/config", b"[default]\nregion = eu-west-1\n", False),
        (
            "src/.aws/config",
            b"[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            True,
        ),
        (
            "src/settings.json",
            b'{"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
            True,
        ),
        ("src/client.py", b"boto3.client('s3', aws_secret_access_key=settings.secret)\n", False),
        ("src/key.txt", UTF16_KEY.encode("utf-16"), True),
        ("src/key.txt", UTF16_KEY.encode("utf-16-le"), True),
        ("src/key.txt", UTF16_KEY.encode("utf-16-be"), True),
        ("src/key.txt", b"\xfe\xff" + UTF16_KEY.encode("utf-16-be"), True),
        ("src/blob.bin", b"\0" + UTF16_KEY.encode("utf-16-le"), True),
        ("src/cert.txt", "-----BEGIN CERTIFICATE-----".encode("utf-16"), False),
    ],
)
def test_secret_names_paths_and_contents(path: str, content: bytes, secret: bool) -> None:
    assert (looks_like_secret(path, content) is not None) is secret


def test_allowed_secrets_still_ship_the_new_kinds(rule_runner: RuleRunner) -> None:
    rule_runner.write_files(
        {
            "services/api/src/prod.env": "TOKEN=x\n",
            "services/api/src/key.txt": PRIVATE_KEY_PEM.encode("utf-16"),
        }
    )
    write_service(rule_runner, sources='["pyproject.toml", "uv.lock", "src/**"]')
    assert [v.path for v in service_context(rule_runner).violations] == [
        "services/api/src/key.txt",
        "services/api/src/prod.env",
    ]

    write_service(
        rule_runner,
        sources='["pyproject.toml", "uv.lock", "src/**"]',
        allowed_secrets='["src/prod.env", "src/key.txt"]',
    )
    assert service_context(rule_runner).violations == ()
