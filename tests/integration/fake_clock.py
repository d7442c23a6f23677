"""Running a build on another day: every process of it sees a faked wall clock.

Pants starts its processes with an environment of their own (the image tool's is empty), so
`faketime`'s LD_PRELOAD and FAKETIME variables would reach Pants alone. Instead the build runs in
a private mount namespace whose /etc is an overlay holding /etc/ld.so.preload (the dynamic linker
loads libfaketime into every process) and /etc/faketimerc (libfaketime's setting when FAKETIME is
unset). Nothing changes outside the namespace. Needs root, like the test engine.

The faked clock starts at the given moment in each process and runs from there. HTTPS still
works: the build downloads from PyPI and Debian, so the moment must lie within their
certificates' validity.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from integration.checkouts import Checkout

_SETUP = r"""
scratch=$1 libfaketime=$2 moment=$3
shift 3
mount -t tmpfs fake-clock "$scratch"
mkdir "$scratch/upper" "$scratch/work"
mount -t overlay fake-clock -o "lowerdir=/etc,upperdir=$scratch/upper,workdir=$scratch/work" /etc
echo "$libfaketime" >/etc/ld.so.preload
echo "@$moment" >/etc/faketimerc
exec "$@"
"""

# A sandboxed Pants process that reports the date it sees, as `export-codegen` output.
_CLOCK_PROBE_DIR = "clock-probe"
_CLOCK_PROBE_BUILD = """\
system_binary(name="date", binary_name="date")
adhoc_tool(name="today", runnable=":date", args=["+%Y-%m-%d"], stdout="today.txt")
"""


def find_libfaketime() -> str | None:
    """The library of Debian's `faketime` package, when it is installed."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def missing_requirement() -> str | None:
    """Why a fake clock cannot be set up here, or None when it can."""
    if os.geteuid() != 0:
        return "faking the clock of a build needs root (a mount namespace and an overlay on /etc)"
    if find_libfaketime() is None:
        return "libfaketime is not installed: apt-get install faketime"
    return None


def fake_clock_wrapper(moment: str, scratch: Path) -> tuple[str, ...]:
    """A command prefix that runs a command, and everything it starts, on a clock that starts at
    `moment` ("YYYY-MM-DD HH:MM:SS", UTC). `scratch`, an empty directory, hosts the overlay."""
    libfaketime = find_libfaketime()
    assert libfaketime, missing_requirement()
    return (
        "unshare", "--mount", "--propagation", "private",
        "sh", "-eu", "-c", _SETUP, "fake-clock", str(scratch), libfaketime, moment,
    )  # fmt: skip


def date_seen_by_sandboxed_processes(
    checkout: Checkout, options: tuple[str, ...], wrapper: tuple[str, ...] = ()
) -> str:
    """The date (YYYY-MM-DD) that a process Pants runs in `checkout` with `options` sees."""
    probe = checkout.root / _CLOCK_PROBE_DIR
    probe.mkdir()
    (probe / "BUILD").write_text(_CLOCK_PROBE_BUILD)
    run = checkout.pants(
        "--backend-packages=+['pants.backend.experimental.adhoc']",
        *options,
        "export-codegen",
        f"{_CLOCK_PROBE_DIR}:today",
        wrapper=wrapper,
    )
    assert run.returncode == 0, run.report()
    return (checkout.dist / "codegen" / _CLOCK_PROBE_DIR / "today.txt").read_text().strip()
