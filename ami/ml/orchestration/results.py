"""Saving a batch of results: one transaction, exactly-once counting, acks after commit.

The order matters:
1. in one transaction: move the batch's image tasks out of PENDING (`claim_images`; a
   result whose task already moved is a repeat and saves nothing), insert the detections
   and classifications of the moved images (one multi-row INSERT each, ON CONFLICT DO
   NOTHING), and record their counts as one increment (`add_increment`);
2. after commit: fold the increment into the stage rows, heartbeat, log, acknowledge every
   NATS message of the batch (confirmed);
3. finish the job if no image waits for a result any more.
A crash anywhere before the acks leaves the messages unacked: NATS redelivers them, the
processing service sends them again, and step 1 finds them counted, whichever subset of the
batch comes back and in whatever batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from ami.jobs.locking import (
    add_increment,
    claim_images,
    fold_increments,
    touch_heartbeat,
    unfolded_job_ids,
)
from ami.jobs.logging import job_logger
from ami.jobs.models import Job
from ami.jobs.states import FINAL_STATES
from ami.main.models import Classification, Detection
from ami.ml.models import Algorithm
from ami.ml.orchestration import nats
from ami.ml.orchestration.finish import finish_if_complete
from ami.ml.orchestration.interrupt import abandon_connection_on_interrupt
from ami.ml.schemas import PipelineResult

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 2.0  # seconds; a process writes a job's heartbeat at most this often
HEARTBEAT_MEMORY = 1000  # jobs remembered per process
LISTED_IMAGES = 20  # image ids named in one log line; the context holds them all


class UnknownAlgorithm(ValueError):
    """A result names an algorithm that does not exist."""


@dataclass(frozen=True)
class BatchOutcome:
    """What saving a batch did: the images it counted (saved or failed) and the repeats."""

    saved: list[int]
    failed: list[int]
    repeats: list[int]
    detections: int
    classifications: int

    @property
    def counted(self) -> int:
        return len(self.saved) + len(self.failed)


# Job id -> monotonic time of this process's last heartbeat for it.
_last_heartbeat: dict[int, float] = {}


def algorithm_ids(keys: set[str]) -> dict[str, int]:
    """Map algorithm keys to ids; raise UnknownAlgorithm naming any that are missing."""
    if not keys:
        return {}
    found = dict(Algorithm.objects.filter(key__in=keys).values_list("key", "pk"))
    missing = sorted(keys - found.keys())
    if missing:
        raise UnknownAlgorithm(f"unknown algorithm(s): {', '.join(missing)}")
    return found


def save_batch(job_id: int, results: Iterable[PipelineResult]) -> BatchOutcome:
    """Save and count a batch of results in one transaction; each image at most once ever.

    Of several results for one image in the batch the first is kept (the others are
    repeats). Results whose image was already counted, or that arrive for a job that is not
    running, save nothing and are returned as repeats.
    """
    unique: dict[int, PipelineResult] = {}
    for result in results:
        unique.setdefault(result.image_id, result)
    algorithms = algorithm_ids(set().union(*(r.algorithm_keys() for r in unique.values())))
    with transaction.atomic(), abandon_connection_on_interrupt():
        _bound_lock_waits()
        claimed = claim_images(job_id, {i: r.error for i, r in unique.items()})
        saved = [r for i, r in unique.items() if i in claimed and r.error is None]
        failed = [i for i, r in unique.items() if i in claimed and r.error is not None]
        detections, classifications = insert_detections(saved, algorithms)
        add_increment(
            job_id,
            processed=len(saved),
            failed=len(failed),
            detections=detections,
            classifications=classifications,
        )
    repeats = [i for i in unique if i not in claimed]
    return BatchOutcome([r.image_id for r in saved], failed, repeats, detections, classifications)


def _bound_lock_waits() -> None:
    # Two batches holding the same image wait on its task row. A wait past this ends as an
    # OperationalError, which the task retries with backoff, well before the Celery soft
    # time limit would interrupt it.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.RESULT_LOCK_TIMEOUT_MS}ms"])


def insert_detections(results: list[PipelineResult], algorithms: dict[str, int]) -> tuple[int, int]:
    """Insert the detections and classifications of these results: three statements.

    Call it inside the transaction that claimed their images (`save_batch`).
    """
    boxes = {
        (r.image_id, algorithms[d.algorithm], d.bbox.as_tuple()): d
        for r in results
        for d in r.detections
    }
    if not boxes:
        return 0, 0
    Detection.objects.bulk_create(
        [
            Detection(
                source_image_id=image_id,
                algorithm_id=algorithm_id,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
                score=detection.score,
            )
            for (image_id, algorithm_id, box), detection in boxes.items()
        ],
        ignore_conflicts=True,
    )
    # An image processed before (by another job) already has some of these boxes: their
    # inserts were skipped, so every id is read back, ours and theirs.
    ids = {
        (row[0], row[1], (row[2], row[3], row[4], row[5])): row[6]
        for row in Detection.objects.filter(
            source_image_id__in={key[0] for key in boxes},
            algorithm_id__in={key[1] for key in boxes},
        ).values_list("source_image_id", "algorithm_id", "x1", "y1", "x2", "y2", "pk")
    }
    labels = {
        (ids[key], algorithms[c.algorithm], c.label): c.score
        for key, detection in boxes.items()
        for c in detection.classifications
    }
    Classification.objects.bulk_create(
        [
            Classification(detection_id=det, algorithm_id=alg, label=label, score=score)
            for (det, alg, label), score in labels.items()
        ],
        ignore_conflicts=True,
    )
    return len(boxes), len(labels)


def process_batch(
    job_id: int, results: list[PipelineResult], service_name: str = ""
) -> BatchOutcome:
    """Save, count, log, ack and maybe finish: the body of the result task."""
    outcome = save_batch(job_id, results)
    # Also after a repeat: a retry after a failed fold finds its own increment still there.
    fold_increments(job_id)
    if outcome.counted:
        _heartbeat(job_id)
    _log(job_id, outcome, {r.image_id: r for r in results}, service_name)
    _ack(job_id, [r.reply_subject for r in results])
    finish_if_complete(job_id)
    return outcome


def fold_stragglers() -> int:
    """Fold what no folder got to (see `fold_increments`); run by the beat. Returns jobs."""
    job_ids = unfolded_job_ids()
    for job_id in job_ids:
        fold_increments(job_id)
    return len(job_ids)


def _log(
    job_id: int, outcome: BatchOutcome, results: dict[int, PipelineResult], service_name: str
) -> None:
    log = job_logger(job_id)
    base = {"processing_service": service_name} if service_name else {}
    source = f" (from {service_name})" if service_name else ""
    for image_id in outcome.failed:
        error = results[image_id].error
        extra = {**base, "image_id": image_id}
        log.error("Image %s failed%s: %s", image_id, source, error, extra=extra)
    if len(outcome.saved) == 1:
        image_id = outcome.saved[0]
        log.info(
            "Saved image %s%s: %d detections, %d classifications",
            image_id,
            source,
            outcome.detections,
            outcome.classifications,
            extra={**base, "image_id": image_id},
        )
    elif outcome.saved:
        log.info(
            "Saved %d images%s: %d detections, %d classifications (images %s)",
            len(outcome.saved),
            source,
            outcome.detections,
            outcome.classifications,
            _listed(outcome.saved),
            extra={**base, "image_ids": outcome.saved},
        )
    if len(outcome.repeats) == 1:
        image_id = outcome.repeats[0]
        extra = {**base, "image_id": image_id}
        log.info("Result for image %s%s was already saved", image_id, source, extra=extra)
    elif outcome.repeats:
        log.info(
            "Results for %d images%s were already saved (images %s)",
            len(outcome.repeats),
            source,
            _listed(outcome.repeats),
            extra={**base, "image_ids": outcome.repeats},
        )


def _listed(image_ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in image_ids[:LISTED_IMAGES])
    more = len(image_ids) - LISTED_IMAGES
    return f"{shown} and {more} more" if more > 0 else shown


def _heartbeat(job_id: int) -> None:
    now = time.monotonic()
    if now - _last_heartbeat.get(job_id, -HEARTBEAT_INTERVAL) >= HEARTBEAT_INTERVAL:
        if len(_last_heartbeat) > HEARTBEAT_MEMORY:
            _last_heartbeat.clear()  # long-lived workers see many jobs; keep this small
        _last_heartbeat[job_id] = now
        touch_heartbeat(job_id, min_interval=HEARTBEAT_INTERVAL)


def _ack(job_id: int, reply_subjects: list[str]) -> None:
    try:
        nats.ack_all(reply_subjects)
    except (nats.NoRespondersError, nats.NatsTimeoutError):
        # Unconfirmed. Fine once the job is final or deleted: its stream is deleted (or being
        # deleted) and nothing is redelivered. Otherwise raise, and the task is retried.
        if not Job.objects.filter(pk=job_id).exclude(status__in=list(FINAL_STATES)).exists():
            return
        raise
