"""Per-service uv locks: `pants esb-lock` writes them, `lint` and `package` check them, and
`package` fails when a compiled dependency needs a shared library the base lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.checkouts import Checkout

SERVICE = "services/worker"
TARGET = f"{SERVICE}:worker"
BASE = "base:esb-service-base"
# greenlet's extension is C++: its manylinux wheel links libstdc++.so.6, which manylinux lets
# wheels take from the system and which our base (python3 and friends) does not install.
COMPILED_DEPENDENCY = "greenlet==3.1.1"


@pytest.fixture
def checkout(repo_root: Path, scratch: Path) -> Checkout:
    return Checkout.copy_of(repo_root, scratch / "checkout")


def add_dependency(checkout: Checkout, requirement: str) -> None:
    checkout.substitute(
        f"{SERVICE}/pyproject.toml", r'"structlog>=24\.1",', f'"structlog>=24.1", "{requirement}",'
    )


def test_a_stale_lock_fails_lint_and_package_until_esb_lock_renews_it(checkout: Checkout) -> None:
    add_dependency(checkout, "six==1.17.0")

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
    checkout: Checkout,
) -> None:
    add_dependency(checkout, COMPILED_DEPENDENCY)
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
