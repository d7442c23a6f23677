"""What to do when something the tests need from outside is missing.

tests/run sets everything up (ESB_REPO_ROOT, a Docker engine at DOCKER_HOST, a Podman service at
ESB_TEST_PODMAN_HOST, skopeo, libfaketime, root). Without it a test is skipped with the reason,
except under CI=true, where it fails: CI must not go green on tests that did not run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skips the test for `reason`, or fails it under CI."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        raise pytest.fail.Exception(
            f"{reason} (CI=true: failing rather than skipping)", pytrace=False
        )
    raise pytest.skip.Exception(reason)


def require(problem: str | None) -> None:
    """Calls `unavailable` when there is a `problem` (a reason, or None when all is well)."""
    if problem:
        unavailable(problem)
