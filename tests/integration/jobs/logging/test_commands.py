"""backfill_job_logs and prune_job_logs against real PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from ami.jobs.tasks import prune_job_logs
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB

LEGACY = {
    "stdout": [  # newest first, as upstream wrote it
        "[2024-05-01 12:00:03] ERROR saving failed",
        "[2024-05-01 12:00:02] WARNING slow",
        "[2024-05-01 12:00:01] INFO started",
    ],
    "stderr": ["saving failed", "an older error that stdout no longer holds"],
}


def backfill(*args: str) -> str:
    out = StringIO()
    call_command("backfill_job_logs", "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_backfill_copies_lines_oldest_first_with_level_and_time(job):
    Job.objects.filter(pk=job.pk).update(legacy_logs=LEGACY)
    assert "backfilled 4 lines into 1 jobs" in backfill()
    rows = list(JobLog.objects.filter(job=job).order_by("id"))
    assert [(r.level, r.message) for r in rows] == [
        (logging.ERROR, "an older error that stdout no longer holds"),
        (logging.INFO, "started"),
        (logging.WARNING, "slow"),
        (logging.ERROR, "saving failed"),
    ]
    assert rows[1].created_at == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert all(r.context["source"] == "legacy_json" for r in rows)


def test_backfill_rerun_adds_nothing_and_resumes_where_it_stopped(job, project):
    other = Job.objects.create(project=project, name="other", legacy_logs=LEGACY)
    Job.objects.filter(pk=job.pk).update(legacy_logs=LEGACY)
    backfill("--job", str(job.pk))  # as if the first run was interrupted after one job
    assert "backfilled 4 lines into 1 jobs" in backfill("--batch-size", "1")
    assert "backfilled 0 lines into 0 jobs" in backfill()
    assert JobLog.objects.filter(job=job).count() == JobLog.objects.filter(job=other).count() == 4


def test_backfill_skips_lines_already_written_live(job):
    job.logger.info("live line")  # dual-write era: this line is in both places
    first_live = JobLog.objects.get(job=job).created_at.replace(microsecond=0)
    earlier = (first_live - timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    later = first_live.strftime("%Y-%m-%d %H:%M:%S")
    legacy = {"stdout": [f"[{later}] INFO live line", f"[{earlier}] INFO before the rollout"]}
    Job.objects.filter(pk=job.pk).update(legacy_logs=legacy)
    backfill()
    assert sorted(stored_messages(job.pk)) == ["before the rollout", "live line"]


def test_backfill_with_an_empty_column_adds_nothing(job):
    out = StringIO()
    call_command("backfill_job_logs", stdout=out)  # with its progress bar
    assert "backfilled 0 lines into 0 jobs" in out.getvalue()


def test_backfill_rejects_a_bad_batch_size():
    with pytest.raises(CommandError, match="--batch-size must be 1 or more"):
        backfill("--batch-size", "0")


def make_rows(job: Job, count: int, age: timedelta) -> None:
    JobLog.objects.bulk_create(JobLog(job=job, message=f"line {i}") for i in range(count))
    JobLog.objects.filter(job=job, created_at__isnull=False).update(created_at=timezone.now() - age)


def test_prune_older_than_deletes_only_old_rows(job, project):
    recent = Job.objects.create(project=project, name="recent")
    make_rows(job, 5, timedelta(days=40))
    make_rows(recent, 3, timedelta(days=1))
    call_command("prune_job_logs", "--older-than", "30d", "--batch-size", "2")
    assert JobLog.objects.filter(job=job).count() == 0
    assert JobLog.objects.filter(job=recent).count() == 3


def test_prune_keep_per_job_keeps_the_newest(job, project):
    other = Job.objects.create(project=project, name="other")
    make_rows(job, 10, timedelta(0))
    make_rows(other, 2, timedelta(0))
    call_command("prune_job_logs", "--keep-per-job", "3")
    assert stored_messages(job.pk) == ["line 7", "line 8", "line 9"]
    assert stored_messages(other.pk) == ["line 0", "line 1"]


def test_prune_dry_run_deletes_nothing(job):
    make_rows(job, 4, timedelta(days=10))
    call_command("prune_job_logs", "--older-than", "1w", "--dry-run")
    assert JobLog.objects.filter(job=job).count() == 4


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --older-than, --keep-per-job, --orphans, or a combination"),
        (["--older-than", "30 days"], "is not a duration"),
        (["--keep-per-job", "-1"], "must be 0 or more"),
    ],
)
def test_prune_rejects_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("prune_job_logs", *args)


def test_periodic_retention_drops_expired_jobs_lines_and_orphans(job, project, job_log_settings):
    job_log_settings(RETENTION="30d")
    long_ago = timezone.now() - timedelta(days=40)
    expired = Job.objects.create(
        project=project, name="expired", status=JobStatus.SUCCESS,
        log_partition_key=long_ago, finished_at=long_ago,
    )  # fmt: skip
    gone = Job.objects.create(project=project, name="deleted later")
    make_rows(expired, 4, timedelta(days=40))
    make_rows(job, 3, timedelta(days=1))
    make_rows(gone, 2, timedelta(days=1))
    gone_id = gone.pk
    Job.objects.filter(pk=gone_id).delete()  # its lines go with it (Django's cascade)
    JobLog.objects.bulk_create(
        JobLog(job_id=gone_id, message="written after the delete") for _ in range(2)
    )
    assert prune_job_logs.apply().get() == 2  # orphans; the expired partition went whole
    assert JobLog.objects.filter(job=expired).count() == 0
    assert JobLog.objects.filter(job=job).count() == 3
    assert not JobLog.objects.filter(job_id=gone_id).exists()


def test_periodic_retention_keeps_everything_but_orphans_when_disabled(job, job_log_settings):
    job_log_settings(RETENTION="")
    make_rows(job, 3, timedelta(days=4000))
    assert prune_job_logs.apply().get() == 0
    assert JobLog.objects.filter(job=job).count() == 3


def test_a_bad_retention_setting_fails_the_system_check(job_log_settings):
    job_log_settings(RETENTION="ninety days")
    with pytest.raises(SystemCheckError, match="AMI_JOB_LOG_RETENTION"):
        call_command("check")
