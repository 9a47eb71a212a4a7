"""`ami logs JOB --follow` in a subprocess: every line once, in order, across lost connections."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from ami.jobs.locking import transition
from ami.jobs.logging import FINAL_LINE_KEY
from ami.jobs.models import JobLog
from ami.jobs.states import JobStatus
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

AMI = str(Path(sys.executable).with_name("ami"))
LINES = 300


def insert(url: str, job_id: int, messages: list[str], context: dict | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for message in messages:
            conn.execute(
                "INSERT INTO jobs_joblog (job_id, level, message, context, job_partition_key) "
                "SELECT id, 20, %s, %s, log_partition_key FROM jobs_job WHERE id = %s",
                [message, json.dumps(context or {}), job_id],
            )


def backends(url: str, app_name: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app_name]
        ).fetchall()
    return [pid for (pid,) in rows]


def terminate(url: str, pids: list[int]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_follow_resumes_after_a_killed_connection(staged_job, subprocess_env, test_database_url):
    transition(staged_job.pk, JobStatus.STARTED)
    app_name = f"ami-logs-{uuid.uuid4().hex[:8]}"
    env = {**subprocess_env, "AMI_APP_NAME": app_name}
    insert(test_database_url, staged_job.pk, [f"line {i}" for i in range(100)])
    follower = subprocess.Popen(
        [AMI, "logs", str(staged_job.pk), "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(out) >= 100, "the first 100 lines", limit=60)
        killed = 0
        for start in range(100, LINES, 50):
            insert(
                test_database_url, staged_job.pk, [f"line {i}" for i in range(start, start + 50)]
            )
            pids = backends(test_database_url, app_name)
            terminate(test_database_url, pids)
            killed += len(pids)
            time.sleep(0.3)
        assert killed >= 2
        transition(staged_job.pk, JobStatus.SUCCESS)
        insert(test_database_url, staged_job.pk, ["Job finished"], {FINAL_LINE_KEY: "SUCCESS"})
        assert follower.wait(timeout=60) == 0, follower.stderr.read()
        summary = f"job {staged_job.pk} SUCCESS: 0 processed, 0 failed of 0 images"
        assert follower.stderr.read().splitlines()[-1] == summary  # --json: stdout stays JSON
    finally:
        follower.kill()
    reader.join(10)
    printed = [json.loads(line) for line in out]
    expected = JobLog.objects.filter(job=staged_job).order_by("txid", "id")
    assert [p["message"] for p in printed] == [line.message for line in expected]
    assert printed[-1]["message"] == "Job finished"
    assert all(p["cursor"] == f"{e.txid}.{e.id}" for p, e in zip(printed, expected, strict=True))


def test_plain_output_level_and_since_cursor(staged_job, subprocess_env):
    lines = [
        JobLog.objects.create(job=staged_job, message=f"m{i}", level=10 * (i % 5))
        for i in range(10)
    ]
    run = subprocess.run(
        [AMI, "logs", str(staged_job.pk), "--level", "warning"],
        env=subprocess_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert [line.split()[-1] for line in run.stdout.splitlines()] == ["m3", "m4", "m8", "m9"]
    line = JobLog.objects.get(pk=lines[8].pk)
    run = subprocess.run(
        [AMI, "logs", str(staged_job.pk), "--json", "--since-cursor", f"{line.txid}.{line.id}"],
        env=subprocess_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert [json.loads(x)["message"] for x in run.stdout.splitlines()] == ["m9"]
    bad = subprocess.run(
        [AMI, "logs", str(staged_job.pk), "--since-cursor", "abc"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "since-cursor" in bad.stderr


def test_a_final_job_ends_with_a_summary_of_its_images(staged_job, subprocess_env):
    JobLog.objects.create(job=staged_job, message="Image 3 failed: unreadable", level=40)
    transition(staged_job.pk, JobStatus.STARTED)
    staged_job.stages.filter(key="process").update(total=742, processed=739, failed=3)
    transition(staged_job.pk, JobStatus.COMPLETED_WITH_ERRORS)
    run = subprocess.run(
        [AMI, "logs", str(staged_job.pk), "--follow"],
        env=subprocess_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    printed = run.stdout.splitlines()
    assert printed[0].endswith("Image 3 failed: unreadable")
    summary = f"job {staged_job.pk} COMPLETED_WITH_ERRORS: 739 processed, 3 failed of 742 images"
    assert printed[-1] == summary
