"""Impact queries: `--changed-since` with `--changed-dependents=transitive`, and `dependents
--transitive`, select exactly the images a change reaches. A service's own files reach its image
only; the base's files and its BUILD file reach the base and, through the dependency that each
service's `base` field infers, every service image. No Docker engine is needed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.checkouts import IMAGE_TARGET_TYPES, Checkout

BASE = "base:esb-service-base"
WORKER = "services/worker:worker"
SERVICES = frozenset({"services/api:api", WORKER, "services/signer:signer"})
ALL_IMAGES = SERVICES | {BASE}
IMAGE_FILTER = f"--filter-target-type={','.join(IMAGE_TARGET_TYPES)}"
# A fixed author, and no signing whatever the machine's git config asks for.
GIT_SETTINGS = (
    "-c",
    "user.name=ESB integration tests",
    "-c",
    "user.email=integration-tests@esb.invalid",
    "-c",
    "commit.gpgsign=false",
)


def git(checkout: Checkout, *arguments: str) -> None:
    run = subprocess.run(
        ["git", *GIT_SETTINGS, *arguments], cwd=checkout.root, capture_output=True, text=True
    )
    assert run.returncode == 0, f"`git {' '.join(arguments)}` failed:\n{run.stderr}"


@pytest.fixture
def committed_checkout(repo_root: Path, scratch: Path) -> Checkout:
    """A copy of the checkout, committed as the only commit of a repository of its own: the
    edit a test makes afterwards is the only change `--changed-since=HEAD` sees."""
    checkout = Checkout.copy_of(repo_root, scratch / "checkout")
    git(checkout, "init", "--quiet")
    git(checkout, "add", "--all")
    git(checkout, "commit", "--quiet", "--message=The checkout under test")
    return checkout


def append_to_api_source(checkout: Checkout) -> None:
    checkout.append("services/api/src/esb_api/app.py", "# Edited by the impact test.\n")


def append_to_worker_lock(checkout: Checkout) -> None:
    checkout.append("services/worker/uv.lock", "# x\n")


def reindent_base_lock(checkout: Checkout) -> None:
    """Changes the file's bytes, not the packages it pins."""
    lock = checkout.root / "base/packages.lock.json"
    lock.write_text(json.dumps(json.loads(lock.read_text()), indent=4) + "\n")


def append_to_trust_script(checkout: Checkout) -> None:
    checkout.append("base/ensure_ca_trust.sh", "# Edited by the impact test.\n")


def set_stop_signal_of_base(checkout: Checkout) -> None:
    checkout.substitute(
        "base/BUILD",
        r'repository="esb/service-base",',
        'repository="esb/service-base",\n    stop_signal="SIGTERM",',
    )


def set_timeout_of_base_tests(checkout: Checkout) -> None:
    """Edits another target of base/BUILD than the base image."""
    checkout.substitute(
        "base/BUILD",
        r'python_tests\(\n    name="tests",',
        'python_tests(\n    name="tests",\n    timeout=120,',
    )


def append_to_readme(checkout: Checkout) -> None:
    checkout.append("README.md", "\nEdited by the impact test.\n")


@pytest.mark.parametrize(
    "edit, reached_images",
    [
        pytest.param(append_to_api_source, frozenset({"services/api:api"}), id="service-source"),
        pytest.param(append_to_worker_lock, frozenset({WORKER}), id="service-lock"),
        pytest.param(reindent_base_lock, ALL_IMAGES, id="base-lock"),
        pytest.param(append_to_trust_script, ALL_IMAGES, id="trust-script"),
        pytest.param(set_stop_signal_of_base, ALL_IMAGES, id="base-build-field"),
        # Pants 2.17 counts every target of a changed BUILD file as changed, not only the
        # edited one (`match_if_owning_build_file_included_in_sources` in pants/vcs/changed.py).
        pytest.param(set_timeout_of_base_tests, ALL_IMAGES, id="other-target-of-base-build"),
        pytest.param(append_to_readme, frozenset(), id="unowned-file"),
    ],
)
def test_changed_since_selects_exactly_the_images_an_edit_reaches(
    committed_checkout: Checkout, edit: Callable[[Checkout], None], reached_images: frozenset[str]
) -> None:
    edit(committed_checkout)

    run = committed_checkout.pants(
        "--changed-since=HEAD", "--changed-dependents=transitive", IMAGE_FILTER, "list"
    )

    assert run.returncode == 0, run.report()
    assert set(run.stdout.split()) == reached_images, run.report()


@pytest.mark.parametrize(
    "arguments, dependent_images",
    [
        pytest.param(("--transitive", BASE), SERVICES, id="base-target"),
        # A file stands for the targets that own it (here the worker image), and `dependents`
        # lists what depends on those owners, leaving the owners out unless asked with --closed.
        pytest.param(("--transitive", "services/worker/uv.lock"), frozenset(), id="service-lock"),
        pytest.param(
            ("--transitive", "--closed", "services/worker/uv.lock"),
            frozenset({WORKER}),
            id="service-lock-closed",
        ),
    ],
)
def test_dependents_lists_the_images_built_on_a_target(
    session_checkout: Checkout, arguments: tuple[str, ...], dependent_images: frozenset[str]
) -> None:
    run = session_checkout.pants("dependents", *arguments)

    assert run.returncode == 0, run.report()
    assert set(run.stdout.split()) & ALL_IMAGES == dependent_images, run.report()
