"""Per-service uv locks: `pants esb-lock` writes them, `lint` and `package` check them, and
`package` fails when a compiled dependency needs a shared library the base lacks."""

from __future__ import annotations

import pytest
from docker import DockerClient

from integration.checkouts import WORKER, Checkout, add_worker_dependency
from integration.containers import run_to_exit

SERVICE = WORKER
TARGET = f"{SERVICE}:worker"
BASE = "base:esb-service-base"
# greenlet's extension is C++: its manylinux wheel links libstdc++.so.6, which manylinux lets
# wheels take from the system and which our base (python3 and friends) does not install.
COMPILED_DEPENDENCY = "greenlet==3.1.1"


def test_a_stale_lock_fails_lint_and_package_until_esb_lock_renews_it(checkout: Checkout) -> None:
    add_worker_dependency(checkout, "six==1.17.0")

    lint = checkout.pants("lint", TARGET)
    package = checkout.pants("package", TARGET)

    for run in (lint, package):
        assert run.returncode != 0, run.report()
        assert (
            f"{SERVICE}/uv.lock does not match {SERVICE}/pyproject.toml" in run.stderr
        ), run.report()
        assert f"pants esb-lock {TARGET}" in run.stderr, run.report()

    lock = checkout.pants("esb-lock", TARGET)

    assert lock.returncode == 0, lock.report()
    assert f"Wrote {SERVICE}/uv.lock" in lock.stdout
    assert 'name = "six"' in (checkout.root / SERVICE / "uv.lock").read_text()
    assert checkout.pants("lint", TARGET).returncode == 0


@pytest.mark.parametrize(
    "edit, message",
    [
        pytest.param("missing", f"{SERVICE} has no uv.lock", id="missing"),
        pytest.param("malformed", f"{SERVICE}/uv.lock is malformed", id="malformed"),
        pytest.param(
            "requires-python",
            "which excludes the base image's Python 3.11.2",
            id="requires-python",
        ),
        pytest.param(
            "outside-path", "depends on local paths outside its directory", id="outside-path"
        ),
    ],
)
def test_a_bad_lock_fails_lint_with_a_clear_message(
    checkout: Checkout, edit: str, message: str
) -> None:
    lock = checkout.root / SERVICE / "uv.lock"
    if edit == "missing":
        lock.unlink()
    elif edit == "malformed":
        lock.write_text("this is [not a lock\n")
    elif edit == "requires-python":
        checkout.substitute(
            f"{SERVICE}/uv.lock", r'requires-python = "[^"]*"', 'requires-python = ">=3.12"'
        )
    else:
        checkout.append(
            f"{SERVICE}/pyproject.toml", '\n[tool.uv.sources]\nshared = { path = "../shared" }\n'
        )

    run = checkout.pants("lint", TARGET)

    assert run.returncode != 0, run.report()
    assert message in run.stderr, run.report()


def test_a_compiled_dependency_needing_a_library_the_base_lacks_fails_until_the_base_adds_it(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    add_worker_dependency(checkout, COMPILED_DEPENDENCY)
    assert checkout.pants("esb-lock", TARGET).returncode == 0

    failed = checkout.pants("package", TARGET)

    assert failed.returncode != 0, failed.report()
    assert "needs libstdc++.so.6" in failed.stderr, failed.report()
    assert "greenlet" in failed.stderr and "`libstdc++6`" in failed.stderr, failed.report()

    checkout.substitute("base/BUILD", r"\bpackages\s*=\s*\[", 'packages=["libstdc++6", ')
    relock = checkout.pants("esb-lock", BASE)
    assert relock.returncode == 0, relock.report()

    passed = checkout.pants("package", TARGET)

    assert passed.returncode == 0, passed.report()
    used = run_in_image(
        checkout,
        docker_client,
        "import greenlet; print(greenlet.greenlet(lambda: 6 * 7).switch())",
    )
    assert used.status == 0 and used.stdout == "42\n", used.report()


def run_in_image(checkout: Checkout, docker_client: DockerClient, code: str):
    """Loads the worker image built in `checkout` and runs `python -c code` in it."""
    image = checkout.load_service_image(TARGET, docker_client)
    return run_to_exit(docker_client, image.id, ["python", "-c", code])


def test_a_local_package_inside_the_service_is_built_and_installed(
    checkout: Checkout, docker_client: DockerClient
) -> None:
    package_dir = checkout.root / SERVICE / "libs" / "greeting"
    (package_dir / "greeting").mkdir(parents=True)
    (package_dir / "pyproject.toml").write_text(
        '[project]\nname = "greeting"\nversion = "1.0"\ndescription = "Hello."\n\n'
        '[build-system]\nrequires = ["flit_core==3.10.1"]\nbuild-backend = "flit_core.buildapi"\n'
    )
    (package_dir / "greeting" / "__init__.py").write_text('def hello():\n    return "hello"\n')
    add_worker_dependency(checkout, "greeting")
    checkout.append(
        f"{SERVICE}/pyproject.toml",
        '\n[tool.uv.sources]\ngreeting = { path = "libs/greeting", editable = true }\n',
    )

    for goal in ("esb-lock", "package"):
        unselected = checkout.pants(goal, TARGET)
        assert unselected.returncode != 0, unselected.report()
        assert (
            f"uses the local package(s) `{SERVICE}/libs/greeting`" in unselected.stderr
        ), unselected.report()
        assert 'add "libs/greeting/**" to `sources`' in unselected.stderr, unselected.report()

    checkout.substitute(
        f"{SERVICE}/BUILD",
        r"esb_service_image\(",
        'esb_service_image(\n    sources=["pyproject.toml", "uv.lock", "build-constraints.txt", '
        '"src/**/*.py", "libs/**"],',
    )
    lock = checkout.pants("esb-lock", TARGET)
    assert lock.returncode == 0, lock.report()
    # The local package's build requirement, pinned with its hashes for the build.
    constraints = (checkout.root / SERVICE / "build-constraints.txt").read_text()
    assert "# build: local libs/greeting requires=flit_core==3.10.1\n" in constraints
    assert "flit-core==3.10.1" in constraints and "--hash=sha256:" in constraints
    package = checkout.pants("package", TARGET)

    assert package.returncode == 0, package.report()
    used = run_in_image(
        checkout,
        docker_client,
        "import os, greeting;"
        "print(greeting.hello(), greeting.__file__, os.path.exists('/app/libs'))",
    )
    assert used.status == 0, used.report()
    assert used.stdout == (
        "hello /.venv/lib/python3.11/site-packages/greeting/__init__.py False\n"
    ), used.report()
