"""JobLog partitions: one per day or week of job starts, made ahead, dropped whole.

JobLog is partitioned by range of `job_partition_key`, the `log_partition_key` of the line's
job (its creation time; migration 0010). The partitions are ours to manage (the embedded
PostgreSQL has no pg_partman):

- `ensure(keys)` makes sure a partition covers each key. The log writers call it for the
  keys of every batch, so a line always has its partition; the process remembers the
  ranges it has seen, so this costs nothing after the first line of a period, and a writer
  that finds a remembered partition gone (dropped by retention) forgets and makes it again.
  `prepare_ahead` (Celery beat) makes the next periods early.
  A partition is created as a plain table and then attached: ATTACH takes SHARE UPDATE
  EXCLUSIVE on the parent, which lets reads and writes through (CREATE TABLE ... PARTITION
  OF would take ACCESS EXCLUSIVE).
- `drop_expired(retention)` drops a partition once every job started in it is final and
  finished before now - retention: DETACH ... CONCURRENTLY (writers of other partitions
  keep writing), then DROP. Milliseconds and almost no WAL, where DELETE took seconds.

Locks, and for how long:
- creating: `pg_advisory_xact_lock(CREATE_LOCK)` for the transaction that re-reads the
  catalogue, creates and attaches (milliseconds), so two creators never race; the DDL runs
  under `lock_timeout` so a creator never queues writers behind it for long.
- dropping: the session-level advisory lock `RETENTION_LEASE`, tried without waiting and held
  for the pass: one runner acts, and a runner that dies releases it with its connection.
  Each DETACH runs under `lock_timeout`; a partition it could not detach waits for the next
  pass, and one left half-detached (by a crash) is finalized by the next pass.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper

from ami.jobs.logging.config import job_logs_setting
from ami.jobs.states import FINAL_STATES

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The tables of JobLog and Job. Named here, not taken from the models: the models use this
# module (JobLog's reads and writes need the keys), so it cannot import them.
PARENT = "jobs_joblog"
JOBS = "jobs_job"
PERIODS = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
CREATE_LOCK = 0x4A4C5043  # "JLPC": advisory lock id of partition creators
RETENTION_LEASE = 0x4A4C5052  # "JLPR": advisory lock id of the retention runner
DDL_LOCK_TIMEOUT = "5s"
AHEAD = 2  # periods made ahead of the current one

PARTITIONS_SQL = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhdetachpending
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = %s::regclass
"""
_BOUND = re.compile(r"FROM \((MINVALUE|'[^']*')\) TO \((MAXVALUE|'[^']*')\)")
# Whether a job keeps the partition's lines: not final, or final within the retention window.
LIVE_JOBS_SQL = f"""
SELECT EXISTS (SELECT 1 FROM {JOBS}
WHERE log_partition_key >= %s AND log_partition_key < %s
  AND NOT (status = ANY(%s) AND coalesce(finished_at, created_at) < %s))
"""


# job id -> its log partition key, for every job this process wrote or read lines of.
_partition_keys: dict[int, datetime] = {}
_PARTITION_KEYS_MAX = 100_000  # forgotten all at once past this; a lookup is one query


def remember_partition_key(job_id: int, key: datetime) -> None:
    if len(_partition_keys) >= _PARTITION_KEYS_MAX:
        _partition_keys.clear()
    _partition_keys[job_id] = key


def forget_partition_keys() -> None:
    _partition_keys.clear()


def partition_keys(job_ids: Iterable[int], using: str = "default") -> dict[int, datetime]:
    """The log partition key of each job that exists; one query for those not remembered.

    `using`: the connection to look up on (the log writers use their own, autocommit one).
    A job created in a transaction not yet committed is found only on that transaction's
    connection, or in this process's memory if it was created here (`remember`).
    """
    wanted = set(job_ids)
    missing = [job_id for job_id in wanted if job_id not in _partition_keys]
    if missing:
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT id, log_partition_key FROM {JOBS} WHERE id = ANY(%s)", [missing]
            )
            for job_id, key in cursor.fetchall():
                remember_partition_key(job_id, key)
    return {job_id: _partition_keys[job_id] for job_id in wanted if job_id in _partition_keys}


@dataclass(frozen=True, order=True)
class Partition:
    start: datetime  # datetime.min (UTC) for MINVALUE
    end: datetime
    name: str
    detach_pending: bool = False

    def covers(self, key: datetime) -> bool:
        return self.start <= key < self.end


LEGACY_KEY = datetime(1970, 1, 1, tzinfo=UTC)  # jobs from before partitioning (migration 0008)
MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)


def period_bounds(key: datetime, period: str) -> tuple[datetime, datetime]:
    """The day (UTC) or ISO week (from Monday, UTC) holding `key`."""
    day = key.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day - timedelta(days=day.weekday()) if period == "week" else day
    return start, start + PERIODS[period]


def configured_period() -> str:
    return job_logs_setting()["PARTITION"]


def partitions(conn: BaseDatabaseWrapper) -> list[Partition]:
    """JobLog's partitions, in key order (from the catalogue: the only source of truth)."""
    with conn.cursor() as cursor:
        cursor.execute(PARTITIONS_SQL, [PARENT])
        return partitions_from_rows(cursor.fetchall())


def partitions_from_rows(rows: list[tuple]) -> list[Partition]:
    found = []
    for name, bound, pending in rows:
        if match := _BOUND.search(bound):
            found.append(Partition(_bound(match[1], MIN), _bound(match[2], MAX), name, pending))
    return sorted(found)


def _bound(text: str, infinite: datetime) -> datetime:
    if text in ("MINVALUE", "MAXVALUE"):
        return infinite
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


class _Covered:
    """The key ranges this process knows have a partition (sorted by start)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[Partition] = []

    def __contains__(self, key: datetime) -> bool:
        parts = self._parts
        index = bisect.bisect_right(parts, key, key=lambda p: p.start) - 1
        return index >= 0 and parts[index].covers(key)

    @property
    def parts(self) -> list[Partition]:
        return self._parts

    def replace(self, parts: list[Partition]) -> None:
        with self._lock:
            self._parts = [p for p in parts if not p.detach_pending]

    def forget(self) -> None:
        self.replace([])


covered = _Covered()


def forget() -> None:
    """Forget every partition and job key this process remembered (after a migration)."""
    covered.forget()
    forget_partition_keys()


def ensure(keys: Iterable[datetime], conn: BaseDatabaseWrapper | None = None) -> None:
    """Make sure a partition holds each key (on `conn`, default: the `logs` connection).

    Inside a transaction (which may yet roll back what it sees or makes) nothing is
    remembered, and the catalogue is read each time.
    """
    conn = conn or connections["logs"]
    if conn.in_atomic_block:
        _ensure_in(conn, set(keys), partitions(conn))
        return
    missing = {key for key in keys if key not in covered}
    if missing:
        covered.replace(partitions(conn))
        if _ensure_in(conn, missing, covered.parts):
            covered.replace(partitions(conn))


def _ensure_in(conn: BaseDatabaseWrapper, keys: set[datetime], known: list[Partition]) -> bool:
    """Create what `keys` miss among the `known` partitions; return whether any was missing."""
    live = [p for p in known if not p.detach_pending]
    missing = {key for key in keys if not any(p.covers(key) for p in live)}
    if missing:
        with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
            _create_for(cursor, missing, configured_period())
    return bool(missing)


def keys_for(job_ids: Iterable[int], conn: BaseDatabaseWrapper) -> dict[int, datetime]:
    """The partition key of each job, each with its partition made (usually: known already).

    A job that does not exist (deleted meanwhile) gets the current time: its lines are
    orphans that no reader asks for, deleted by the orphan pass or dropped with the partition.
    """
    job_ids = set(job_ids)
    keys = partition_keys(job_ids, using=conn.alias)
    if len(keys) < len(job_ids):
        now = datetime.now(UTC)
        keys = {job_id: keys.get(job_id, now) for job_id in job_ids}
    ensure(keys.values(), conn)
    return keys


def prepare_ahead(now: datetime | None = None, periods: int = AHEAD) -> None:
    """Make the partitions of the current period and of the next `periods` ones."""
    now = now or datetime.now(UTC)
    step = PERIODS[configured_period()]
    ensure([now + step * n for n in range(periods + 1)], connections["default"])


def _create_for(cursor, keys: set[datetime], period: str) -> None:
    """Inside a transaction, under the creators' lock: a partition for each uncovered key."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CREATE_LOCK])
    cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
    cursor.execute(PARTITIONS_SQL, [PARENT])
    existing = partitions_from_rows(cursor.fetchall())
    for key in sorted(keys):
        if any(p.covers(key) for p in existing):
            continue
        start, end = _free_range(key, period, existing)
        name = partition_name(start)
        cursor.execute(
            f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        # Bounds as literals: DDL takes no parameters.
        cursor.execute(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        existing.append(Partition(start, end, name))
        logger.info("created JobLog partition %s for [%s, %s)", name, start, end)


def _free_range(key: datetime, period: str, existing: list[Partition]) -> tuple[datetime, datetime]:
    """The period holding `key`, cut short where it would overlap an existing partition
    (possible after the period setting changed from day to week or back)."""
    start, end = period_bounds(key, period)
    for part in existing:
        if part.end <= key:
            start = max(start, part.end)
        elif part.start > key:
            end = min(end, part.start)
    return start, end


def partition_name(start: datetime) -> str:
    if start.time() == datetime.min.time():
        return f"{PARENT}_p{start:%Y%m%d}"
    return f"{PARENT}_p{start:%Y%m%d_%H%M%S}"


@dataclass
class RetentionPass:
    dropped: list[str]
    kept_for_jobs: list[str]  # old enough, but a job in it is still live
    busy: list[str]  # could not be detached within lock_timeout; next pass
    lease_taken: bool = True  # False: another runner holds the lease, nothing done
    # name -> milliseconds of its DETACH (what other sessions could notice) and its DROP
    # (removing the files: the detached table is no one else's by then)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


def drop_expired(retention: timedelta, now: datetime | None = None) -> RetentionPass:
    """Drop every partition whose period ended before now - `retention` and whose jobs are
    all final since before then. Runs on its own connection, outside any transaction."""
    cutoff = (now or datetime.now(UTC)) - retention
    conn = connections["default"]
    if conn.in_atomic_block:
        raise RuntimeError("drop_expired detaches CONCURRENTLY: call it outside a transaction")
    result = RetentionPass([], [], [])
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RETENTION_LEASE])
        if not cursor.fetchone()[0]:
            result.lease_taken = False
            return result
        try:
            for part in partitions(conn):
                _retire(cursor, part, cutoff, result)
        finally:
            cursor.execute("RESET lock_timeout")
            cursor.execute("SELECT pg_advisory_unlock(%s)", [RETENTION_LEASE])
    covered.forget()
    return result


def _retire(cursor, part: Partition, cutoff: datetime, result: RetentionPass) -> None:
    if not part.detach_pending:
        if part.end > cutoff:
            return
        cursor.execute(LIVE_JOBS_SQL, [part.start, part.end, list(FINAL_STATES), cutoff])
        if cursor.fetchone()[0]:
            result.kept_for_jobs.append(part.name)
            return
    cursor.execute(f"SET lock_timeout = '{DDL_LOCK_TIMEOUT}'")
    mode = "FINALIZE" if part.detach_pending else "CONCURRENTLY"
    started = time.perf_counter()
    try:
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {part.name} {mode}")
    except OperationalError as exc:  # lock_timeout: readers or writers held it too long
        logger.warning("JobLog partition %s not detached (%s); next pass", part.name, exc)
        result.busy.append(part.name)
        return
    detached = time.perf_counter()
    cursor.execute(f"DROP TABLE {part.name}")
    result.dropped.append(part.name)
    result.timings[part.name] = {
        "detach_ms": round((detached - started) * 1000, 1),
        "drop_ms": round((time.perf_counter() - detached) * 1000, 1),
    }
    logger.info("dropped JobLog partition %s", part.name)


def on_job_saved(
    sender: type, instance: Any, created: bool, using: str = "default", **_: object
) -> None:
    """A new job: remember its key, for its lines written in this process before the job
    commits (the log connection cannot see it yet), and make its partition once the job
    commits (DDL inside the creating transaction would hold the creators' lock until the
    caller commits). A failure there is not the job's: the writers make the partition."""
    if not created:
        return
    key = instance.log_partition_key
    remember_partition_key(instance.pk, key)

    def make_partition() -> None:
        try:
            ensure([key], connections[using])
        except DatabaseError as exc:
            logger.warning("JobLog partition for job %s not made yet: %s", instance.pk, exc)

    transaction.on_commit(make_partition, using=using)


def is_missing_partition(exc: BaseException) -> bool:
    """The error of a row whose key no partition covers (a check violation on no constraint),
    raised by psycopg or wrapped by Django."""
    cause = exc.__cause__ if isinstance(exc, IntegrityError) else exc
    return isinstance(cause, psycopg.errors.CheckViolation) and cause.diag.constraint_name is None


def write_keyed(
    conn: BaseDatabaseWrapper, job_ids: Iterable[int], write: Callable[[dict[int, datetime]], T]
) -> T:
    """`write(keys)` with the jobs' partition keys (`keys_for`), run again once if a partition
    this process remembered was dropped since (by retention, or a migration in tests).

    `write` must be safe to run twice: the log writers skip lines already stored, and a
    failed statement stored nothing. Inside a transaction the failure aborted it, so it is
    raised: there, nothing was remembered.
    """
    keys = keys_for(job_ids, conn)
    try:
        return write(keys)
    except (psycopg.errors.CheckViolation, IntegrityError) as exc:
        if conn.in_atomic_block or not is_missing_partition(exc):
            raise
    covered.forget()
    ensure(keys.values(), conn)
    return write(keys)
