"""Every job-row lock and guarded update, in one place.

Rules kept here:
- A job row is locked only with `FOR NO KEY UPDATE`. A plain `FOR UPDATE` conflicts with
  the `FOR KEY SHARE` that inserting a row referencing the job takes (its stages and image
  tasks), so a process that held it and inserted through another connection would wait on
  itself. JobLog rows reference the job without a database constraint (migration 0002):
  writing a log line takes no lock on the job row at all.
- A lock is held for one short statement or block: no logging, network or NATS calls inside.
- Status changes are conditional UPDATEs: they succeed only from an allowed source state,
  so a final job is never pulled back and concurrent finishers cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ami.jobs.models import ImageTask, Job, JobStage
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


@dataclass(frozen=True)
class StageCounts:
    """A stage's counters right after a result was counted in it."""

    key: str
    total: int
    processed: int
    failed: int

    @property
    def complete(self) -> bool:
        return self.processed + self.failed >= self.total


# Moves one image's task out of PENDING and, only if it moved, counts it in the job's
# `process` and `results` stages. One statement: the task UPDATE's RETURNING feeds the stage
# UPDATE, so a result counts exactly once however often it is delivered or retried. The
# stage rows are locked in id order (no deadlock between two results) and re-read by
# PostgreSQL after the lock wait, so concurrent increments are never lost.
_RECORD_RESULT_SQL = """
WITH moved AS (
    UPDATE jobs_imagetask AS t
       SET state = %(state)s, error = %(error)s, updated_at = now()
     WHERE t.job_id = %(job_id)s AND t.source_image_id = %(image_id)s AND t.state = %(pending)s
       AND EXISTS (SELECT 1 FROM jobs_job AS j WHERE j.id = %(job_id)s AND j.status = %(started)s)
 RETURNING t.id
), locked AS (
    SELECT s.id FROM jobs_jobstage AS s
     WHERE s.job_id = %(job_id)s AND s.key IN (%(process)s, %(results)s)
       AND EXISTS (SELECT 1 FROM moved)
     ORDER BY s.id
       FOR NO KEY UPDATE
)
UPDATE jobs_jobstage AS s
   SET processed = s.processed + %(done)s,
       failed = s.failed + %(failed)s,
       detections = s.detections + %(detections)s,
       classifications = s.classifications + %(classifications)s,
       progress = CASE WHEN s.total > 0
                       THEN LEAST(1.0, (s.processed + s.failed + 1)::float / s.total)
                       ELSE 1.0 END,
       status = CASE WHEN s.processed + s.failed + 1 >= s.total
                     THEN %(stage_done)s ELSE %(stage_started)s END,
       updated_at = now()
  FROM locked
 WHERE s.id = locked.id
RETURNING s.key, s.total, s.processed, s.failed
"""


def record_image_result(
    job_id: int,
    image_id: int,
    *,
    failed: bool,
    error: str = "",
    detections: int = 0,
    classifications: int = 0,
) -> list[StageCounts]:
    """Mark the image's task DONE or FAILED and count it; return [] if it was not PENDING.

    Locks: the image's `jobs_imagetask` row and the job's `process` and `results` stage rows,
    until the caller's transaction ends. Caller's contract: run this inside the transaction
    that saved the result, as its last statement, and commit right after (the stage rows are
    shared by every result of the job); roll the transaction back when it returns [] (the
    result was already counted, or the job is not running). Never log inside.
    """
    params = {
        "job_id": job_id,
        "image_id": image_id,
        "state": TaskState.FAILED if failed else TaskState.DONE,
        "error": error,
        "pending": TaskState.PENDING,
        "started": JobStatus.STARTED,
        "process": StageKey.PROCESS,
        "results": StageKey.RESULTS,
        "done": 0 if failed else 1,
        "failed": 1 if failed else 0,
        "detections": detections,
        "classifications": classifications,
        "stage_done": StageStatus.SUCCESS,
        "stage_started": StageStatus.STARTED,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RECORD_RESULT_SQL, params)
        return [StageCounts(*row) for row in cursor.fetchall()]


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


def pending_task_count(job_id: int) -> int:
    """How many of the job's images still wait for a result. Locks: nothing."""
    return ImageTask.objects.filter(job_id=job_id, state=TaskState.PENDING).count()
