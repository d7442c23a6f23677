"""uv's export of a lock, split into one entry per distribution, and the entries for a target."""

from __future__ import annotations

from esb_contract.lock_export import LockedDistribution
from imagetool.venv.conftest import DEBIAN_12
from imagetool.venv.export import LockedRequirements, export_args


def test_export_args() -> None:
    assert export_args(["test"]) == [
        "export",
        "--frozen",
        "--no-default-groups",
        "--no-emit-project",
        "--no-editable",
        "--format=requirements-txt",
        "--no-header",
        "--no-annotate",
        "--extra=test",
    ]


def test_for_target_keeps_the_distributions_for_it_without_their_markers() -> None:
    hashes = "    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64 + "\n"
    locked = LockedRequirements(
        (
            LockedDistribution(
                "typing-extensions",
                "typing-extensions==4.16.0 ; python_full_version < '3.15' \\\n" + hashes,
            ),
            LockedDistribution(
                "colorama", "colorama==0.4.6 ; sys_platform == 'win32' \\\n" + hashes
            ),
            LockedDistribution("six", "six==1.17.0 \\\n" + hashes),
            LockedDistribution("idna", "idna==3.20\n"),
        )
    )
    assert [d.requirement for d in locked.for_target(DEBIAN_12).distributions] == [
        # The same entry as a lock that has no marker for it: one layer for both.
        "typing-extensions==4.16.0 \\\n" + hashes,
        "six==1.17.0 \\\n" + hashes,
        "idna==3.20\n",
    ]
