"""Every job-row and stage-row lock and guarded update, in one place.

Rules kept here:
- A job row is locked only with `FOR NO KEY UPDATE`. A plain `FOR UPDATE` conflicts with
  the `FOR KEY SHARE` that inserting a row referencing the job takes (its stages and image
  tasks), so a process that held it and inserted through another connection would wait on
  itself. JobLog rows reference the job without a database constraint (migration 0002):
  writing a log line takes no lock on the job row at all.
- A lock is held for one short statement or block: no logging, network or NATS calls inside.
- Result counts never touch the job row or the stage rows that every result of a job
  shares: a result transaction locks only its own images' task rows and inserts a
  `ProgressIncrement`; `fold_increments` adds increments to the stage rows, one session
  per job at a time (an advisory lock), so no result waits on another's stage update.
- Status changes are conditional UPDATEs: they succeed only from an allowed source state,
  so a final job is never pulled back and concurrent finishers cannot both win.
- A job's log budget (`jobs_joblogbudget`) is taken in chunks by guarded upserts that
  never touch the job row: one statement each, in autocommit, on the log writers' own
  connection (`ami.jobs.logging.budget_ledger`), bounded by its `lock_timeout`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ami.jobs.models import ImageTask, Job, JobLogBudget, JobStage, ProgressIncrement
from ami.jobs.states import FINAL_STATES, JobStatus, StageKey, StageStatus, TaskState, sources_of


@contextmanager
def lock_job(job_id: int) -> Iterator[Job]:
    """Lock one job row `FOR NO KEY UPDATE` for the duration of the block.

    Locks: the `jobs_job` row of `job_id`, until the block's transaction ends.
    Caller's contract: keep the block short; never log, call the network or NATS inside
    (collect what you want to log and log it after the block).
    """
    with transaction.atomic():
        yield Job.objects.select_for_update(no_key=True).get(pk=job_id)


def transition(job_id: int, target: JobStatus, *, reason: str = "") -> bool:
    """Move a job to `target` if its current status allows it; return True if it moved.

    Locks: the job row, for this single UPDATE statement only.
    Exactly one of several concurrent callers wins a transition into a final state; the
    others get False and must not repeat the side effects of finishing.
    """
    now = timezone.now()
    changes: dict = {"status": target}
    if target == JobStatus.STARTED:
        changes["started_at"] = now
    if target in FINAL_STATES:
        changes["finished_at"] = now
    if reason:
        changes["failure_reason"] = reason
    updated = Job.objects.filter(Q(pk=job_id) & Q(status__in=sources_of(target))).update(**changes)
    return updated == 1


def touch_heartbeat(job_id: int, min_interval: float = 0.0) -> None:
    """Record that work on the job is alive (read by the stale-job check).

    Locks: the job row, for this single UPDATE statement only, and only if nobody else
    holds it: a heartbeat is best effort, so a row locked elsewhere is skipped
    (`SKIP LOCKED`) rather than waited for. With `min_interval` (seconds) a heartbeat
    newer than that is left alone and the row is not written, so many concurrent result
    tasks do not queue up on the job row.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=min_interval)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE jobs_job SET last_heartbeat_at = %s
            WHERE id = (
                SELECT id FROM jobs_job
                WHERE id = %s AND (last_heartbeat_at IS NULL OR last_heartbeat_at < %s)
                FOR NO KEY UPDATE SKIP LOCKED
            )
            """,
            [now, job_id, cutoff],
        )


# Moves the tasks of a batch's images out of PENDING, each to its own new state, if the job
# is running. The rows are locked in id order (two overlapping batches cannot deadlock) and
# re-checked by PostgreSQL after a lock wait: of two deliveries of one image's result, only
# the first to commit moves its task, and the other finds it no longer PENDING.
_CLAIM_SQL = """
WITH wanted AS (
    SELECT * FROM unnest(%(image_ids)s::bigint[], %(states)s::text[], %(errors)s::text[])
        AS w(image_id, state, error)
), locked AS (
    SELECT t.id, w.state, w.error
      FROM jobs_imagetask AS t JOIN wanted AS w ON w.image_id = t.source_image_id
     WHERE t.job_id = %(job_id)s AND t.state = %(pending)s
       AND EXISTS (SELECT 1 FROM jobs_job AS j WHERE j.id = %(job_id)s AND j.status = %(started)s)
     ORDER BY t.id
       FOR NO KEY UPDATE OF t
)
UPDATE jobs_imagetask AS t
   SET state = locked.state, error = locked.error, updated_at = now()
  FROM locked
 WHERE t.id = locked.id
RETURNING t.source_image_id
"""


def claim_images(job_id: int, errors: dict[int, str | None]) -> set[int]:
    """Move the tasks of these images out of PENDING; return the images that moved.

    `errors` maps each image to its error (the task becomes FAILED) or None (DONE). An image
    whose task is no longer PENDING (its result was already counted), or any image of a job
    that is not running, is left alone and not returned.
    Locks: the moved `jobs_imagetask` rows, until the caller's transaction ends; nothing
    shared by other images or by the job. Caller's contract: count exactly the returned
    images (`add_increment`) in the same transaction.
    """
    if not errors:
        return set()
    image_ids = list(errors)
    params = {
        "job_id": job_id,
        "image_ids": image_ids,
        "states": [TaskState.DONE if errors[i] is None else TaskState.FAILED for i in image_ids],
        "errors": [errors[i] or "" for i in image_ids],
        "pending": TaskState.PENDING,
        "started": JobStatus.STARTED,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        return {row[0] for row in cursor.fetchall()}


def add_increment(
    job_id: int, *, processed: int, failed: int, detections: int, classifications: int
) -> None:
    """Record counts to add to the job's `process` and `results` stages (`fold_increments`).

    Locks: nothing shared (an insert into an append-only table; no constraint on the job).
    """
    if processed or failed:
        ProgressIncrement.objects.create(
            job_id=job_id,
            processed=processed,
            failed=failed,
            detections=detections,
            classifications=classifications,
        )


# Takes the job's fold lock (an advisory lock on the job id, held to the end of this
# statement, which runs in autocommit), then deletes every increment of the job and adds their
# sums to its `process` and `results` stages: a reader sees the counts either still in
# increments or already in the stages. Progress and stage status are derived here too.
# `locked.ok` is false when another session holds the lock; then nothing is deleted.
_FOLD_SQL = """
WITH locked AS (
    {lock}
), gone AS (
    DELETE FROM jobs_progressincrement
     WHERE job_id = %(job_id)s AND (SELECT ok FROM locked)
    RETURNING processed, failed, detections, classifications
), sums AS (
    SELECT count(*) AS n,
           coalesce(sum(processed), 0) AS processed, coalesce(sum(failed), 0) AS failed,
           coalesce(sum(detections), 0) AS detections,
           coalesce(sum(classifications), 0) AS classifications
      FROM gone
), folded AS (
    UPDATE jobs_jobstage AS s
       SET processed = s.processed + sums.processed,
           failed = s.failed + sums.failed,
           detections = s.detections + sums.detections,
           classifications = s.classifications + sums.classifications,
           progress = CASE WHEN s.total > 0
                           THEN LEAST(1.0, (s.processed + s.failed + sums.processed + sums.failed)
                                           ::float / s.total)
                           ELSE 1.0 END,
           status = CASE WHEN s.processed + s.failed + sums.processed + sums.failed >= s.total
                         THEN %(stage_done)s ELSE %(stage_started)s END,
           updated_at = now()
      FROM sums
     WHERE s.job_id = %(job_id)s AND s.key IN (%(process)s, %(results)s) AND sums.n > 0
    RETURNING s.id
)
SELECT ok, (SELECT count(*) FROM folded) FROM locked
"""
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%(job_id)s::bigint) AS ok"
_WAIT_LOCK = "SELECT true AS ok FROM pg_advisory_xact_lock(%(job_id)s::bigint)"
# Nothing else here takes advisory locks in the single-bigint key space, keyed by job id
# (the two-int key space is separate).
FOLD_ROUNDS = 50  # per call, so a folder under a steady stream of results returns at last


def fold_increments(job_id: int, *, wait: bool = False) -> None:
    """Add the job's increments to its stage rows; one folder per job at a time.

    Locks: an advisory lock on the job id, then the job's `process` and `results` stage rows,
    both for one autocommit statement. Call it outside any transaction. Without `wait` a
    call never waits: if another folder holds the lock it returns at once, and that folder,
    once its statement committed, looks again for increments and folds ours too (it looks
    after our failed attempt, which came after our insert committed). So every committed
    increment is folded soon, and the stage rows are written by one session at a time
    instead of by every result. With `wait` (to finish a job, when its counters must be
    exact) it waits its turn.
    """
    sql = _FOLD_SQL.format(lock=_WAIT_LOCK if wait else _TRY_LOCK)
    for _ in range(FOLD_ROUNDS):
        with connection.cursor() as cursor:
            cursor.execute(sql, _fold_params(job_id))
            took_lock = cursor.fetchone()[0]
        if not took_lock:
            return
        if not ProgressIncrement.objects.filter(job_id=job_id).exists():
            return


def _fold_params(job_id: int) -> dict:
    return {
        "job_id": job_id,
        "process": StageKey.PROCESS,
        "results": StageKey.RESULTS,
        "stage_done": StageStatus.SUCCESS,
        "stage_started": StageStatus.STARTED,
    }


def unfolded_job_ids() -> list[int]:
    """Jobs with increments not yet folded (a folder stopped after `FOLD_ROUNDS`). Locks:
    nothing."""
    return list(ProgressIncrement.objects.values_list("job_id", flat=True).distinct())


def set_collected(job_id: int, total: int) -> None:
    """Record the collect stage as done and size the process and results stages.

    Locks: the job's three stage rows, for this single UPDATE statement only.
    """
    JobStage.objects.filter(job_id=job_id, key=StageKey.COLLECT).update(
        status=StageStatus.SUCCESS, total=total, processed=total, progress=1.0
    )
    JobStage.objects.filter(job_id=job_id, key__in=[StageKey.PROCESS, StageKey.RESULTS]).update(
        total=total, status=StageStatus.STARTED if total else StageStatus.SUCCESS
    )


def mark_stage(job_id: int, key: StageKey, status: StageStatus) -> None:
    """Set one stage's status.

    Locks: that stage row, for this single UPDATE statement only.
    """
    JobStage.objects.filter(job_id=job_id, key=key).update(status=status)


def close_stages(job_id: int) -> None:
    """Mark the unfinished stages of a job that has just finished as FAILURE.

    Locks: the job's unfinished stage rows, for this single UPDATE statement only.
    """
    JobStage.objects.filter(job_id=job_id).exclude(status=StageStatus.SUCCESS).update(
        status=StageStatus.FAILURE
    )


def stale_job_ids(cutoff: datetime) -> list[int]:
    """Running jobs whose last sign of life (heartbeat, start, creation) is older than cutoff.

    Locks: nothing (a plain read). CREATED jobs are never considered: nobody started them.
    """
    alive = Coalesce("last_heartbeat_at", "started_at", "created_at")
    return list(
        Job.objects.exclude(status__in=[*FINAL_STATES, JobStatus.CREATED])
        .alias(alive_at=alive)
        .filter(alive_at__lt=cutoff)
        .values_list("pk", flat=True)
    )


def transition_if_stale(job_id: int, target: JobStatus, cutoff: datetime, reason: str) -> bool:
    """Finish a job only if it is still stale at the moment of the UPDATE; True if it moved.

    Locks: the job row, for this single UPDATE statement only. A heartbeat that lands between
    the stale check's read and this UPDATE makes it a no-op.
    """
    alive = Coalesce("last_heartbeat_at", "started_at", "created_at")
    now = timezone.now()
    updated = (
        Job.objects.filter(pk=job_id, status__in=sources_of(target))
        .alias(alive_at=alive)
        .filter(alive_at__lt=cutoff)
        .update(status=target, finished_at=now, failure_reason=reason)
    )
    return updated == 1


def has_pending_tasks(job_id: int) -> bool:
    """Whether any image of the job still waits for a result (stops at the first one;
    `ami.jobs.progress.task_outcomes` counts them). Locks: nothing."""
    return ImageTask.objects.filter(job_id=job_id, state=TaskState.PENDING).exists()


# -- Job log budget ------------------------------------------------------------------------
# The grant is computed from the row as it was (an UPDATE's SET sees the old values) and
# written to `last_grant_*`, which RETURNING reports: one statement adds and reports it.
# Nothing is granted unless both the lines and the bytes are below their limits, and a
# grant never takes either past its limit: the last chunk is partial, the limit exact.
_BUDGET = JobLogBudget._meta.db_table
_GRANT_LINES = (
    "CASE WHEN b.lines_reserved < %(line_limit)s AND b.bytes_reserved < %(byte_limit)s "
    "THEN LEAST(%(lines)s, %(line_limit)s - b.lines_reserved) ELSE 0 END"
)
_GRANT_BYTES = (
    "CASE WHEN b.lines_reserved < %(line_limit)s AND b.bytes_reserved < %(byte_limit)s "
    "THEN LEAST(%(bytes)s, %(byte_limit)s - b.bytes_reserved) ELSE 0 END"
)
_RESERVE_SQL = f"""
INSERT INTO {_BUDGET} AS b (job_id, lines_reserved, bytes_reserved, last_grant_lines,
                            last_grant_bytes, elided_lines, elided_bytes)
VALUES (%(job_id)s, LEAST(%(lines)s, %(line_limit)s), LEAST(%(bytes)s, %(byte_limit)s),
        LEAST(%(lines)s, %(line_limit)s), LEAST(%(bytes)s, %(byte_limit)s), 0, 0)
ON CONFLICT (job_id) DO UPDATE SET
    last_grant_lines = {_GRANT_LINES},
    last_grant_bytes = {_GRANT_BYTES},
    lines_reserved = b.lines_reserved + {_GRANT_LINES},
    bytes_reserved = b.bytes_reserved + {_GRANT_BYTES}
RETURNING last_grant_lines, last_grant_bytes
"""
_ELIDED_SQL = f"""
INSERT INTO {_BUDGET} AS b (job_id, lines_reserved, bytes_reserved, last_grant_lines,
                            last_grant_bytes, elided_lines, elided_bytes)
VALUES (%(job_id)s, 0, 0, 0, 0, %(lines)s, %(bytes)s)
ON CONFLICT (job_id) DO UPDATE SET
    elided_lines = b.elided_lines + EXCLUDED.elided_lines,
    elided_bytes = b.elided_bytes + EXCLUDED.elided_bytes
"""


def reserve_log_budget(
    cursor: Any, job_id: int, lines: int, size: int, *, line_limit: int, byte_limit: int
) -> tuple[int, int]:
    """Take up to `lines` lines and `size` bytes of a job's log budget; return the grant.

    Locks: the job's `jobs_joblogbudget` row (made if missing), for this single statement
    only, run in autocommit on `cursor` (the log writers' connection, whose `lock_timeout`
    bounds the wait). Never the job row. Concurrent callers are serialised on the budget
    row, and each sees the others' grants: together they never exceed the limits.
    """
    params = {"job_id": job_id, "lines": lines, "bytes": size}
    cursor.execute(_RESERVE_SQL, {**params, "line_limit": line_limit, "byte_limit": byte_limit})
    granted_lines, granted_bytes = cursor.fetchone()
    return granted_lines, granted_bytes


def add_elided_lines(cursor: Any, job_id: int, lines: int, size: int) -> None:
    """Add lines (and their bytes) left out past the budget to the job's elided counts.

    Locks: the job's `jobs_joblogbudget` row, for this single autocommit statement only.
    """
    cursor.execute(_ELIDED_SQL, {"job_id": job_id, "lines": lines, "bytes": size})
