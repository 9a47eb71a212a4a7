"""Retention on a real table: expired partitions first, then orphans in id ranges; the
command's age pass through the BRIN index in bounded batches; and the admin's level filter
without a DISTINCT."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ami.jobs.logging import retention
from ami.jobs.models import Job, JobLog
from ami.jobs.states import JobStatus
from tests.support.logs import LOGS_DB

pytestmark = LOGS_DB


def make_rows(job_id: int, count: int, age: timedelta) -> None:
    stamp = timezone.now() - age
    JobLog.objects.bulk_create(
        JobLog(job_id=job_id, message=f"line {i}", created_at=stamp) for i in range(count)
    )


def deletes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]


def job_started_ago(project, days: int, status: str = JobStatus.SUCCESS) -> Job:
    started = timezone.now() - timedelta(days=days)
    return Job.objects.create(
        project=project, name=f"{days} days ago", status=status,
        log_partition_key=started, finished_at=started + timedelta(hours=1),
    )  # fmt: skip


def test_retention_drops_expired_partitions_first_then_orphans_in_bounded_batches(job, project):
    expired = job_started_ago(project, 45)
    still_running = job_started_ago(project, 50, JobStatus.STARTED)
    gone = Job.objects.create(project=project, name="deleted")
    gone_id = gone.pk
    gone.delete()
    make_rows(expired.pk, 7, timedelta(days=45))
    make_rows(still_running.pk, 2, timedelta(days=50))
    make_rows(job.pk, 3, timedelta(days=1))
    make_rows(gone_id, 5, timedelta(days=1))
    with CaptureQueriesContext(connection) as queries:
        deleted = retention.apply_retention(timedelta(days=30), batch_size=3)
    assert deleted == 5  # the orphans; the expired job's partition went whole
    assert not JobLog.objects.filter(job=expired).exists()
    assert JobLog.objects.filter(job=still_running).count() == 2
    assert JobLog.objects.filter(job=job).count() == 3
    assert not JobLog.objects.filter(job_id=gone_id).exists()
    sql = [q["sql"] for q in queries.captured_queries]
    detach = next(i for i, s in enumerate(sql) if "DETACH PARTITION" in s)
    orphans = deletes(queries)
    assert orphans and all("NOT EXISTS" in s for s in orphans)  # id ranges of 3 rows
    assert len(orphans) == 4  # 10 rows left: 4 ranges
    assert detach < sql.index(orphans[0])


def test_dry_runs_count_without_deleting(job, project):
    gone = Job.objects.create(project=project, name="deleted")
    gone_id = gone.pk
    gone.delete()
    make_rows(job.pk, 4, timedelta(days=40))
    make_rows(gone_id, 2, timedelta(days=1))
    assert retention.prune_older_than(timedelta(days=30), 3, dry_run=True) == 4
    assert retention.prune_orphans(3, dry_run=True) == 2
    assert JobLog.objects.count() == 6


def test_keep_per_job_keeps_the_newest_in_txid_then_id_order(job):
    make_rows(job.pk, 4, timedelta(0))
    ids = list(JobLog.objects.filter(job=job).order_by("id").values_list("id", flat=True))
    # The row with the lowest id committed last (a later transaction): it is the newest.
    JobLog.objects.filter(id=ids[0]).update(txid=10**12)
    retention.prune_per_job(2, batch_size=10)
    kept = set(JobLog.objects.filter(job=job).values_list("id", flat=True))
    assert kept == {ids[0], ids[3]}


@pytest.fixture
def large_log(job) -> int:
    """~200k lines over 100 days, oldest first on disk, summarised and analysed like a
    table autovacuum has seen."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JobLog._meta.db_table} "
            "(job_id, job_partition_key, level, message, context, created_at) "
            "SELECT %s, %s, 20, 'line', '{}', "
            "now() - interval '100 days' + n * interval '43 seconds' "
            "FROM generate_series(1, 200000) AS n",
            [job.pk, job.log_partition_key],
        )
        cursor.execute(f"VACUUM ANALYZE {JobLog._meta.db_table}")
    return 200_000


def test_the_age_pass_finds_old_rows_through_the_brin_index(large_log):
    cutoff = timezone.now() - timedelta(days=90)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + retention.DELETE_OLD, [cutoff, retention.DEFAULT_BATCH_SIZE])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        scanned = re.findall(r"Bitmap Index Scan on (\w+)", plan)
        cursor.execute(
            "SELECT DISTINCT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
            "WHERE c.relname = ANY(%s)",
            [scanned],
        )
        assert [row[0] for row in cursor.fetchall()] == ["brin"], plan
    assert retention.prune_older_than(timedelta(days=90), retention.DEFAULT_BATCH_SIZE) > 0
    assert not JobLog.objects.filter(created_at__lt=cutoff).exists()


def test_the_admin_level_filter_lists_fixed_levels_without_a_distinct(admin_client, job):
    make_rows(job.pk, 2, timedelta(0))
    JobLog.objects.create(job=job, level=40, message="broke")
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/jobs/joblog/", {"level": "40"})
    assert page.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert [line.message for line in page.context["cl"].result_list] == ["broke"]
    assert b"WARNING" in page.content  # offered although no WARNING line exists
