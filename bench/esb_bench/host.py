"""The machine the benchmarks run on: the tools they install when missing, and the facts their
reports give."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import tomllib

from esb_bench.monorepo import REPO
from esb_bench.process import run

INFRA_LIB = REPO / "tests" / "infra" / "lib.sh"


def install_missing_tools(script_name: str) -> bool:
    """Debian's dockerd and iptables for the Docker contenders' engines, and docker-registry and
    skopeo for the node's pull, installed as tests/run installs them when missing (BuildGrid
    installs itself: tests/infra/buildgrid.sh)."""
    tools = "dockerd=docker.io docker=docker.io iptables=iptables docker-registry=docker-registry skopeo=skopeo"
    script = f'SCRIPT_NAME={script_name}; source "$1"; install_missing {tools}'
    return subprocess.run(["bash", "-c", script, "bash", str(INFRA_LIB)]).returncode == 0


def machine_facts(work: Path) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    df = run(["df", "--output=source,fstype,size,avail", "-h", str(work)])
    device, fstype, size, available = df.splitlines()[1].split()
    changes = " + uncommitted changes" if run(["git", "status", "--porcelain"], cwd=REPO) else ""
    return {
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": model,
        "Cores": f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()} logical",
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "Disk (temporary directory)": f"{device}, {fstype}, {size} ({available} free)",
        "Kernel": f"Linux {platform.release()}",
        "Checkout": run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO) + changes,
        "1-minute load average at the start": f"{os.getloadavg()[0]:.2f}",
        "Pants": tomllib.loads((REPO / "pants.toml").read_text())["GLOBAL"]["pants_version"],
    }
