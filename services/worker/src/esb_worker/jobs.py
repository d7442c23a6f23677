"""Job files: what a job asks for, how it is computed, where its outcome goes.

A job is a JSON file `<job>.json` in the spool directory, e.g.
`{"operation": "sum", "values": [1, 2, 3]}`. Its outcome is written next to it, as
`<job>.done` (`{"job": ..., "result": ...}`) or as `<job>.failed`
(`{"job": ..., "error": ...}`), and the job file is then removed.

Producers must make a job appear whole: write it under another name (one not ending in
`.json`) and rename it into place, as the worker does with its outcomes.
"""

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOB_SUFFIX = ".json"
DONE_SUFFIX = ".done"
FAILED_SUFFIX = ".failed"


class InvalidJob(ValueError):
    pass


@dataclass(frozen=True)
class Outcome:
    job: str
    result: Any = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def _text(job: dict[str, Any]) -> str:
    text = job.get("text")
    if not isinstance(text, str):
        raise InvalidJob("'text' must be a string")
    return text


def _sum(job: dict[str, Any]) -> int | float:
    values = job.get("values")
    if not isinstance(values, list) or not all(
        isinstance(value, int | float) and not isinstance(value, bool)
        for value in values
    ):
        raise InvalidJob("'values' must be a list of numbers")
    total = sum(values)
    if not math.isfinite(total):
        raise InvalidJob("the sum overflows a JSON number")
    return total


def _sha256(job: dict[str, Any]) -> str:
    return hashlib.sha256(_text(job).encode()).hexdigest()


def _word_count(job: dict[str, Any]) -> int:
    return len(_text(job).split())


OPERATIONS = {"sum": _sum, "sha256": _sha256, "word_count": _word_count}


def compute(job: Any) -> Any:
    if not isinstance(job, dict):
        raise InvalidJob("a job must be a JSON object")
    operation_name = job.get("operation")
    operation = (
        OPERATIONS.get(operation_name) if isinstance(operation_name, str) else None
    )
    if operation is None:
        raise InvalidJob(f"'operation' must be one of {sorted(OPERATIONS)}")
    return operation(job)


def pending_jobs(spool_dir: Path) -> list[Path]:
    """Job files in arrival order (modification time, then name)."""
    jobs = []
    for path in spool_dir.glob(f"*{JOB_SUFFIX}"):
        try:
            jobs.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue  # Withdrawn by its producer between listing and stat.
    return [path for _, _, path in sorted(jobs)]


def process(job_path: Path) -> Outcome:
    """Compute one job, record its outcome beside it, and remove the job file."""
    name = job_path.name.removesuffix(JOB_SUFFIX)
    try:
        job = json.loads(job_path.read_bytes(), parse_constant=_reject_constant)
        outcome = Outcome(job=name, result=compute(job))
    # ValueError covers InvalidJob, malformed JSON and bytes that are not UTF-8.
    except ValueError as error:
        outcome = Outcome(job=name, error=str(error))
    if outcome.succeeded:
        _write_atomically(
            job_path.with_suffix(DONE_SUFFIX), {"job": name, "result": outcome.result}
        )
    else:
        _write_atomically(
            job_path.with_suffix(FAILED_SUFFIX), {"job": name, "error": outcome.error}
        )
    job_path.unlink()
    return outcome


def _reject_constant(constant: str) -> None:
    # Python's json reads NaN and Infinity, but they are not JSON and can't be written.
    raise InvalidJob(f"{constant} is not a JSON number")


def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    # Readers of the spool must never see a half-written outcome.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, sort_keys=True) + "\n")
    os.replace(partial, path)
