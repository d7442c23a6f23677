"""A uv workspace in the repository: one root `pyproject.toml` and `uv.lock`, two member services
and a library member both import. `pants esb-lock` locks the workspace once, each image installs
only what its member needs and runs, a re-lock for one member leaves the other's image as it was,
and a member's mistakes are named with their fix."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from docker import DockerClient

from integration.checkouts import Checkout, ImageTarget, scratch_directory
from integration.containers import run_to_exit

ROOT = "workspace"
ALPHA = f"{ROOT}/services/alpha:alpha"
BETA = f"{ROOT}/services/beta:beta"
FLIT = '[build-system]\nrequires = ["flit_core==3.10.1"]\nbuild-backend = "flit_core.buildapi"\n'


def member(name: str, dependencies: list[str], extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
            [project]
            name = "{name}"
            version = "1.0"
            description = "A member of the test workspace."
            requires-python = "==3.11.*"
            dependencies = {dependencies!r}
            """
        ).replace("'", '"')
        + extra
    )


USES_GREET = "\n[tool.uv.sources]\ngreet = { workspace = true }\n"


def service_main(package: str, dependency: str) -> str:
    return textwrap.dedent(
        f"""\
        import importlib.metadata

        import greet
        import {dependency}

        print(greet.hello("{package}"), "{dependency}", importlib.metadata.version("{dependency}"))
        """
    )


def write_workspace(root: Path) -> None:
    files = {
        "pyproject.toml": '[tool.uv.workspace]\nmembers = ["services/*", "libs/*"]\n',
        "BUILD": 'files(name="uv-workspace", sources=["pyproject.toml", "uv.lock"])\n',
        "libs/greet/pyproject.toml": member("greet", ["six==1.17.0"], "\n" + FLIT),
        # An owner for the shared member's files: a change to them selects the members using it.
        "libs/greet/BUILD": 'files(name="greet", sources=["*.py", "pyproject.toml"])\n',
        "libs/greet/greet.py": (
            '"""Greets."""\n\n__version__ = "1.0"\n\n\n'
            "def hello(name):\n    return f'hello from {name}'\n"
        ),
        "services/alpha/pyproject.toml": member("alpha", ["greet", "six==1.17.0"], USES_GREET),
        "services/alpha/src/alpha/__main__.py": service_main("alpha", "six"),
        "services/beta/pyproject.toml": member("beta", ["greet", "idna==3.10"], USES_GREET),
        "services/beta/src/beta/__main__.py": service_main("beta", "idna"),
    }
    for name in ("alpha", "beta"):
        files[f"services/{name}/BUILD"] = (
            f'esb_service_image(name="{name}", base="//base:esb-service-base", '
            f'repository="esb/{name}", command=["python", "-m", "{name}"])\n'
        )
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture(scope="module")
def checkout(repo_root: Path) -> Iterator[Checkout]:
    """The checkout with the workspace, locked by `pants esb-lock` of both members."""
    with scratch_directory("esb-integration-workspace-") as scratch:
        checkout = Checkout.copy_of(repo_root, scratch / "checkout")
        write_workspace(checkout.root / ROOT)
        run = checkout.pants("esb-lock", ALPHA, BETA)
        assert run.returncode == 0, run.report()
        # Once for both members, at the root.
        assert run.stdout.count(f"Wrote {ROOT}/uv.lock") == 1, run.stdout
        assert not (checkout.root / ROOT / "services/alpha/uv.lock").exists()
        yield checkout


def package(checkout: Checkout) -> dict[str, str]:
    run = checkout.pants("package", ALPHA, BETA)
    assert run.returncode == 0, run.report()
    return checkout.digests([ImageTarget.service(ALPHA), ImageTarget.service(BETA)])


def test_members_build_with_the_workspace_lock_and_run(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    lock = (checkout.root / ROOT / "uv.lock").read_text()
    assert 'name = "alpha"' in lock and 'name = "beta"' in lock and 'name = "idna"' in lock
    lint = checkout.pants("lint", ALPHA, BETA)
    assert lint.returncode == 0, lint.report()
    package(checkout)
    images = {
        address: checkout.load_service_image(address, docker_client) for address in (ALPHA, BETA)
    }
    for address, name, dependency in ((ALPHA, "alpha", "six 1.17.0"), (BETA, "beta", "idna 3.10")):
        result = run_to_exit(docker_client, images[address].id)
        assert result.status == 0, result.report()
        assert result.stdout.strip() == f"hello from {name} {dependency}", result.report()
    # Each member installs what it needs and nothing of the other: alpha has no idna.
    probe = run_to_exit(
        docker_client,
        images[ALPHA].id,
        ["python", "-c", "import importlib.util as u; print(u.find_spec('idna') is None)"],
    )
    assert probe.stdout.strip() == "True", probe.report()


def test_a_root_lock_change_selects_both_but_rebuilds_only_the_changed_member(
    checkout: Checkout,
) -> None:
    for changed in (f"{ROOT}/uv.lock", f"{ROOT}/libs/greet/greet.py"):
        dependents = checkout.pants("dependents", "--transitive", changed)
        assert dependents.returncode == 0, dependents.report()
        images = [a for a in dependents.stdout.split() if a.startswith(f"{ROOT}/services/")]
        assert sorted(images) == [ALPHA, BETA], dependents.stdout

    before = package(checkout)
    checkout.substitute(f"{ROOT}/services/beta/pyproject.toml", r"idna==3\.10", "idna==3.9")
    relock = checkout.pants("esb-lock", BETA)
    assert relock.returncode == 0, relock.report()
    assert 'version = "3.9"' in (checkout.root / ROOT / "uv.lock").read_text()
    after = package(checkout)

    assert after[ALPHA] == before[ALPHA]
    assert after[BETA] != before[BETA]


@pytest.mark.parametrize(
    "edit, messages",
    [
        pytest.param(
            "own-lock",
            [
                f"has its own {ROOT}/services/alpha/uv.lock",
                f"uv uses the workspace's lock, {ROOT}/uv.lock",
                f"`pants esb-lock {ALPHA}`",
            ],
            id="member-with-own-lock",
        ),
        pytest.param(
            "not-a-member",
            [
                "is not one of its members",
                'add "services/alpha" to `members` in `[tool.uv.workspace]` of '
                f"{ROOT}/pyproject.toml",
            ],
            id="not-a-member",
        ),
        pytest.param(
            "outside-dependency",
            [f"{ROOT}:notes", f"on a target outside {ROOT}/services/alpha/"],
            id="context-refuses-the-rest-of-the-root",
        ),
        pytest.param(
            "no-lock",
            [f"{ROOT} has no uv.lock", f"`pants esb-lock {ALPHA}`"],
            id="root-without-lock",
        ),
    ],
)
def test_workspace_mistakes_are_named_with_their_fix(
    repo_root: Path, scratch: Path, edit: str, messages: list[str]
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    root = checkout.root / ROOT
    write_workspace(root)
    if edit != "no-lock":
        (root / "uv.lock").write_text('version = 1\nrequires-python = "==3.11.*"\n')
    if edit == "own-lock":
        (root / "services/alpha/uv.lock").write_text("")
    elif edit == "not-a-member":
        (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["libs/*"]\n')
    elif edit == "outside-dependency":
        (root / "notes.txt").write_text("the rest of the root")
        checkout.append(f"{ROOT}/BUILD", 'file(name="notes", source="notes.txt")\n')
        checkout.substitute(
            f"{ROOT}/services/alpha/BUILD",
            r"command=",
            'dependencies=["//workspace:notes"], command=',
        )

    run = checkout.pants("lint", ALPHA)

    assert run.returncode != 0, run.report()
    for message in messages:
        assert message in run.stderr, run.report()
    assert "Traceback" not in run.stderr, run.report()
