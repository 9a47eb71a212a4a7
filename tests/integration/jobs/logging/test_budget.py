"""The per-job log budget with several real writer processes on one job, in every backend
that stores into the database: together they stay within the budget, keep every WARNING and
each one's last lines, and count exactly what they left out."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest

from ami.jobs.locking import transition
from ami.jobs.logging.budget import line_bytes
from ami.jobs.logging.rows import LogRow
from ami.jobs.management.commands.logs import summary_line
from ami.jobs.models import Job, JobLog, JobLogBudget
from ami.jobs.states import JobStatus
from tests.support.logs import LOGS_DB

pytestmark = [LOGS_DB, pytest.mark.slow]

WRITERS, LINES, WARN_EVERY = 6, 300, 10
BUDGET, TAIL = 400, 5  # lines below WARNING; the tail share (40) holds every writer's 5
LEGACY_ENTRY = re.compile(r"^\[[^\]]+\] (\w+) writer (\d+) line (\d+):")


def run_writers(job_id: int, env: dict[str, str]) -> list[dict]:
    """Start the writers, release them together, return their JSON results."""
    command = [sys.executable, "-m", "tests.support.budget_writer", "--job", str(job_id),
               "--lines", str(LINES), "--warn-every", str(WARN_EVERY), "--tag"]  # fmt: skip
    writers = [
        subprocess.Popen(
            [*command, str(tag)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        for tag in range(WRITERS)
    ]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "ready"
        for writer in writers:
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = [json.loads(writer.communicate(timeout=300)[0]) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert [writer.returncode for writer in writers] == [0] * WRITERS
    return results


def stored_lines(job: Job, backend: str) -> list[tuple[int, int, int]]:
    """(level, writer, seq) of every stored line."""
    if backend == "legacy_json":
        job.refresh_from_db()
        found = [LEGACY_ENTRY.match(entry) for entry in job.legacy_logs["stdout"]]
        levels = logging.getLevelNamesMapping()
        return [(levels[m[1]], int(m[2]), int(m[3])) for m in found if m]
    rows = JobLog.objects.filter(job=job).values_list("level", "context")
    return [(level, context["writer"], context["seq"]) for level, context in rows]


@pytest.mark.parametrize("backend", ["sync", "buffered", "legacy_json", "redis"])
def test_concurrent_writers_stay_within_the_budget_and_count_what_they_elide(
    backend, job, subprocess_env
):
    env = {**subprocess_env, "JOB_LOG_BACKEND": backend, "JOB_LOG_DUAL_WRITE": "false",
           "AMI_JOB_LOG_MAX_LINES": str(BUDGET), "AMI_JOB_LOG_MAX_BYTES": "0",
           "AMI_JOB_LOG_TAIL_LINES": str(TAIL)}  # fmt: skip
    results = run_writers(job.pk, env)
    sizes = {(r["tag"], int(seq)): size for r in results for seq, size in r["sizes"].items()}
    lines = stored_lines(job, backend)
    info = [(writer, seq) for level, writer, seq in lines if level < logging.WARNING]
    warnings = [(writer, seq) for level, writer, seq in lines if level >= logging.WARNING]

    assert len(info) == len(set(info)) and len(warnings) == len(set(warnings))
    assert len(info) <= BUDGET < len(sizes)  # within the budget, which the writers passed
    assert set(warnings) == {(w, s) for w in range(WRITERS) for s in range(0, LINES, WARN_EVERY)}
    for writer in range(WRITERS):  # each writer's last lines
        last = [s for s in range(LINES) if s % WARN_EVERY][-TAIL:]
        assert {(writer, s) for s in last} <= set(info)
    budget = JobLogBudget.objects.get(job=job)
    assert budget.lines_reserved <= BUDGET
    assert budget.elided_lines == len(sizes) - len(info)
    assert budget.elided_bytes == sum(sizes.values()) - sum(sizes[line] for line in info)


def test_the_bytes_stored_are_measured_as_the_writers_measure_them(job, use_backend):
    """`line_bytes` of a line read back equals the size its writer counted (ASCII text)."""
    backend = use_backend("sync", budget_lines=10, budget_tail=0)
    context = {"writer": 0, "seq": 1}
    backend.emit(job.pk, logging.INFO, "a line", context)
    (row,) = JobLog.objects.filter(job=job)
    assert line_bytes(LogRow(job.pk, row.level, row.message, row.context)) == line_bytes(
        LogRow(job.pk, logging.INFO, "a line", context)
    )


def test_the_log_api_shows_the_elided_count(job, member_client, project):
    JobLogBudget.objects.create(job=job, elided_lines=1234, elided_bytes=98765)
    body = member_client.get(f"/api/jobs/{job.pk}/logs").json()
    assert (body["elided_lines"], body["elided_bytes"]) == (1234, 98765)
    page = member_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "1234 lines elided" in page


def test_without_elided_lines_the_api_says_zero_and_the_page_hides_the_marker(job, member_client):
    body = member_client.get(f"/api/jobs/{job.pk}/logs").json()
    assert (body["elided_lines"], body["elided_bytes"]) == (0, 0)
    page = member_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="log-elided" class="warning" data-lines="0" hidden' in page


def test_the_summary_of_ami_logs_names_the_elided_lines(job):
    JobLogBudget.objects.create(job=job, elided_lines=77, elided_bytes=7700)
    assert transition(job.pk, JobStatus.STARTED) and transition(job.pk, JobStatus.SUCCESS)
    assert summary_line(job.pk).endswith("; 77 log lines elided (past the job's log budget)")
