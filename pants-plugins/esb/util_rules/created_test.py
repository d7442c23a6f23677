from __future__ import annotations

import pytest

from esb.util_rules.created import CommitTime, commit_time_from_git


def test_the_committer_time_git_prints_is_the_commit_time() -> None:
    assert commit_time_from_git(0, b"1700000000\n", b"", "/repo") == CommitTime(1_700_000_000)


@pytest.mark.parametrize(
    "exit_code, stdout, stderr, said",
    [
        pytest.param(
            128,
            b"",
            b"fatal: your current branch 'main' does not have any commits yet\n",
            "fatal: your current branch 'main' does not have any commits yet",
            id="no-commit",
        ),
        pytest.param(0, b"", b"", "exit status 0", id="nothing-printed"),
        pytest.param(0, b"soon\n", b"", "soon", id="not-a-number"),
    ],
)
def test_no_time_from_git_says_what_git_said(
    exit_code: int, stdout: bytes, stderr: bytes, said: str
) -> None:
    time = commit_time_from_git(exit_code, stdout, stderr, "/repo")
    assert time.seconds is None
    assert time.problem == f"git finds no commit checked out at /repo ({said})"
    assert time.fix == "build in a git checkout with a commit (`git commit`)"
