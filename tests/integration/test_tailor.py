"""`pants tailor` gives a new service directory its image target, and the image builds; the
targets it adds leave every goal over the repository working."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from docker import DockerClient

from integration.checkouts import Checkout


def test_tailor_adds_an_image_target_for_a_new_service_that_then_builds(
    repo_root: Path, scratch: Path
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    service = checkout.root / "services" / "billing"
    (service / "src" / "esb_billing").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(checkout.root / "services" / "worker" / name, service / name)
    (service / "src" / "esb_billing" / "__main__.py").write_text("print('billing')\n")

    check = checkout.pants("tailor", "--check", "::")
    assert check.returncode == 1, check.report()
    assert "Add esb_service_image target billing" in check.stdout + check.stderr, check.report()

    tailor = checkout.pants("tailor", "::")

    assert tailor.returncode == 0, tailor.report()
    build = (service / "BUILD").read_text()
    # Pants formats the BUILD file itself; compare without its whitespace.
    compact = "".join(build.split())
    assert 'base="//base:esb-service-base"' in compact, build
    assert 'command=["python","-m","esb_billing",]' in compact, build
    assert 'user="esb"' in compact, build
    package = checkout.pants("package", "services/billing:billing")
    assert package.returncode == 0, package.report()


def _git(checkout: Checkout, *arguments: str) -> None:
    # A fixed author, and no signing whatever the machine's git config asks for.
    settings = ("-c", "user.name=t", "-c", "user.email=t@esb.invalid", "-c", "commit.gpgsign=false")
    run = subprocess.run(
        ["git", *settings, *arguments], cwd=checkout.root, capture_output=True, text=True
    )
    assert run.returncode == 0, f"`git {' '.join(arguments)}` failed:\n{run.stderr}"


def _new_service(checkout: Checkout, name: str, package_dir: str, package: str) -> Path:
    """A service with the worker's uv project, a `__main__` package in `package_dir` and a test
    that imports the package as the image's Python does."""
    service = checkout.root / "services" / name
    (service / package_dir / package).mkdir(parents=True)
    (service / "tests").mkdir()
    for file in ("pyproject.toml", "uv.lock"):
        shutil.copy(checkout.root / "services" / "worker" / file, service / file)
    (service / package_dir / package / "__init__.py").write_text("ANSWER = 42\n")
    (service / package_dir / package / "__main__.py").write_text(f"print('{name}')\n")
    (service / "tests" / f"test_{name}.py").write_text(
        f"from {package} import ANSWER\n\n\ndef test_answer():\n    assert ANSWER == 42\n"
    )
    return service


def test_after_tailor_on_flat_and_src_layouts_test_dependents_and_changed_still_work(
    repo_root: Path, scratch: Path, docker_client: DockerClient
) -> None:
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    # `--changed-since` needs a history: the copy as one commit, the new services untracked.
    _git(checkout, "init", "--quiet")
    _git(checkout, "add", "--all")
    _git(checkout, "commit", "--quiet", "--message=The checkout under test")
    flat = _new_service(checkout, "flat", ".", "app")
    _new_service(checkout, "billing", "src", "esb_billing")

    tailor = checkout.pants("tailor", "::")

    assert tailor.returncode == 0, tailor.report()
    assert "no source root" not in tailor.stderr, tailor.report()
    compact = "".join((flat / "BUILD").read_text().split())
    assert 'command=["python","-m","app",]' in compact, compact
    assert 'user="esb"' in compact, compact
    assert 'sources=["pyproject.toml","uv.lock","app/**",]' in compact, compact
    # Pants' own tailor adds the code's targets beside the image's.
    assert (flat / "app" / "BUILD").read_text().strip() == "python_sources()"
    assert (flat / "tests" / "BUILD").read_text().strip() == "python_tests()"

    test = checkout.pants("test", "services::")
    assert test.returncode == 0, test.report()
    for test_file in ("services/flat/tests/test_flat.py", "services/billing/tests/test_billing.py"):
        assert f"{test_file} succeeded" in test.stderr, test.report()

    dependents = checkout.pants("dependents", "--transitive", "base:esb-service-base")
    assert dependents.returncode == 0, dependents.report()
    assert {"services/flat:flat", "services/billing:billing"} <= set(dependents.stdout.split())

    changed = checkout.pants(
        "--changed-since=HEAD",
        "--changed-dependents=transitive",
        "--filter-target-type=esb_base_image,esb_service_image",
        "list",
    )
    assert changed.returncode == 0, changed.report()
    assert set(changed.stdout.split()) == {"services/flat:flat", "services/billing:billing"}

    # The flat service's image ships its code and starts it, as the base's service account.
    for arguments, output in (((), "flat"), (("--", "id", "-un"), "esb")):
        run = checkout.pants(
            "run",
            "--esb-run-network=none",
            "services/flat:flat",
            *arguments,
            passed_env=["DOCKER_HOST"],
        )
        assert run.returncode == 0, run.report()
        # The entrypoint's trust warnings may come before or after the command's own line.
        assert output in run.stdout.splitlines(), run.stdout
