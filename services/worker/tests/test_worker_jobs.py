import hashlib
import json
import os
from pathlib import Path

import pytest

from esb_worker.jobs import InvalidJob, compute, pending_jobs, process


def write_job(spool_dir: Path, name: str, job: object) -> Path:
    path = spool_dir / f"{name}.json"
    path.write_text(json.dumps(job))
    return path


@pytest.mark.parametrize(
    ("job", "result"),
    [
        ({"operation": "sum", "values": [1, 2, 3.5]}, 6.5),
        ({"operation": "sum", "values": []}, 0),
        ({"operation": "sha256", "text": "esb"}, hashlib.sha256(b"esb").hexdigest()),
        ({"operation": "word_count", "text": "  edge serverless\nbox "}, 3),
    ],
)
def test_compute(job: dict, result: object) -> None:
    assert compute(job) == result


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"values": [1]}, "'operation' must be one of"),
        ({"operation": ["sum"]}, "'operation' must be one of"),
        (
            {"operation": "sum", "values": [1, "2"]},
            "'values' must be a list of numbers",
        ),
        ({"operation": "sum", "values": [True]}, "'values' must be a list of numbers"),
        ({"operation": "sha256", "text": 7}, "'text' must be a string"),
        ({"operation": "sum", "values": [1e308, 1e308]}, "overflows"),
    ],
)
def test_compute_rejects_invalid_jobs(job: object, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        compute(job)


def test_process_writes_done_and_removes_the_job(tmp_path: Path) -> None:
    job_path = write_job(tmp_path, "job-1", {"operation": "sum", "values": [40, 2]})

    outcome = process(job_path)

    assert outcome.succeeded
    assert json.loads((tmp_path / "job-1.done").read_text()) == {
        "job": "job-1",
        "result": 42,
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job-1.done"]


def test_process_records_an_invalid_job_as_failed(tmp_path: Path) -> None:
    job_path = write_job(tmp_path, "job-2", {"operation": "divide"})

    outcome = process(job_path)

    assert not outcome.succeeded
    failed = json.loads((tmp_path / "job-2.failed").read_text())
    assert failed["job"] == "job-2"
    assert "'operation' must be one of" in failed["error"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["job-2.failed"]


@pytest.mark.parametrize(
    "content",
    [b"{truncated", b"\xff\xfe\x00garbage", b'{"operation": "sum", "values": [NaN]}'],
)
def test_process_records_unreadable_content_as_failed(
    tmp_path: Path, content: bytes
) -> None:
    job_path = tmp_path / "job-3.json"
    job_path.write_bytes(content)

    outcome = process(job_path)

    assert not outcome.succeeded
    assert (tmp_path / "job-3.failed").exists()
    assert not job_path.exists()


def test_pending_jobs_are_in_arrival_order_and_ignore_other_files(
    tmp_path: Path,
) -> None:
    for age_s, name in [(30, "b"), (20, "a"), (10, "c")]:
        path = write_job(tmp_path, name, {})
        os.utime(path, (1_700_000_000 - age_s, 1_700_000_000 - age_s))
    (tmp_path / "old.done").write_text("{}")
    (tmp_path / "notes.txt").write_text("")

    assert [path.name for path in pending_jobs(tmp_path)] == [
        "b.json",
        "a.json",
        "c.json",
    ]
