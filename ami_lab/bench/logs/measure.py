"""Run one benchmark mode on a fresh job and count what was stored (needs Django set up).

Each mode's job gets a JobLog partition of its own: its `log_partition_key` is set to a day
far in the future that no partition covers yet, the partition is made before the writers
start (so no writer pays for the DDL) and dropped after. What that partition holds is then
exactly this mode's lines, and `stored_bytes` can measure them from the catalogue.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connections

from ami.jobs import log_partitions
from ami.jobs.models import Job, JobLog
from ami.main.models import Project
from ami_lab.bench.logs.writers import JSON_COLUMN_MODES, BackendFigures, run_writers, summarize

BENCH_PROJECT = "ami bench logs"
# The bench's own partitions: days from here on, never reached by real jobs or retention.
FIRST_BENCH_DAY = datetime(2200, 1, 1, tzinfo=UTC)
INDEX_SIZE_SQL = """
SELECT coalesce(sum(pg_relation_size(indexrelid, 'main')), 0)
FROM pg_index WHERE indrelid = %s::regclass
"""


def measure_mode(mode: str, processes: int, lines: int) -> BackendFigures:
    """Write with `mode` into a new job, count the lines and bytes stored, delete the job."""
    project, _ = Project.objects.get_or_create(name=BENCH_PROJECT)
    conn = connections["default"]
    key = free_day(log_partitions.partitions(conn))
    job = Job.objects.create(project=project, name=f"bench {mode}", log_partition_key=key)
    log_partitions.ensure([key], conn)
    try:
        results = run_writers(mode, job.pk, processes, lines)
        figures = summarize(mode, results, stored_lines(job, mode))
        if mode not in JSON_COLUMN_MODES and figures.stored:
            heap, index = stored_bytes(key)
            figures.heap_bytes_per_line = round(heap / figures.stored, 1)
            figures.index_bytes_per_line = round(index / figures.stored, 1)
        return figures
    finally:
        job.delete()
        drop_partition(key)


def free_day(existing: list[log_partitions.Partition]) -> datetime:
    """The first bench day that no partition covers (one left by a crashed run is skipped)."""
    day = FIRST_BENCH_DAY
    while any(part.covers(day) for part in existing):
        day += timedelta(days=1)
    return day


def bench_partition(key: datetime) -> str:
    """The name of the partition that holds `key` (from the catalogue)."""
    parts = log_partitions.partitions(connections["default"])
    return next(part.name for part in parts if part.covers(key) and not part.detach_pending)


def stored_bytes(key: datetime) -> tuple[int, int]:
    """(heap, index) bytes of the partition holding `key`: the main fork of the table and
    of each of its indexes, after a VACUUM.

    The VACUUM moves the GIN indexes' pending lists (where fresh entries wait, unsorted)
    into the indexes proper, as autovacuum soon would: the long-run size. Main forks only,
    so the free-space and visibility maps the VACUUM makes are not counted. The partition
    holds this mode's lines alone, so this is exact, but for each index's fixed pages (a
    metapage, a BRIN's range map: a few bytes per line at the default 16,000 lines).
    """
    name = bench_partition(key)
    with connections["default"].cursor() as cursor:
        cursor.execute(f"VACUUM {name}")
        cursor.execute("SELECT pg_relation_size(%s::regclass, 'main')", [name])
        heap = cursor.fetchone()[0]
        cursor.execute(INDEX_SIZE_SQL, [name])
        return heap, int(cursor.fetchone()[0])


def drop_partition(key: datetime) -> None:
    name = bench_partition(key)
    with connections["default"].cursor() as cursor:
        cursor.execute(f"ALTER TABLE {log_partitions.PARENT} DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")
    log_partitions.covered.forget()


def stored_lines(job: Job, mode: str) -> int:
    if mode in JSON_COLUMN_MODES:
        job.refresh_from_db(fields=["legacy_logs"])
        return len(job.legacy_logs.get("stdout", []))
    return JobLog.objects.filter(job=job).count()
