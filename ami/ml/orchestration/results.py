"""Saving one image's result: idempotent inserts, exactly-once counting, confirmed ack.

The order matters:
1. in one transaction: insert detections and classifications (ON CONFLICT DO NOTHING),
   then move the image's task out of PENDING and count it (`record_image_result`), as
   the last statement; a result that was already counted rolls back and saves nothing;
2. after commit: heartbeat, log, acknowledge the NATS message (confirmed);
3. finish the job if that was the last image.
A crash anywhere before the ack leaves the message unacked: NATS redelivers it, the
processing service sends the result again, and step 1 finds it already counted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from ami.jobs.locking import StageCounts, record_image_result, touch_heartbeat
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


class UnknownAlgorithm(ValueError):
    """A result names an algorithm that does not exist."""


@dataclass(frozen=True)
class SaveOutcome:
    counted: bool
    detections: int
    classifications: int
    stages: list[StageCounts]

    @property
    def complete(self) -> bool:
        return bool(self.stages) and all(stage.complete for stage in self.stages)


# Job id -> monotonic time of this process's last heartbeat for it.
_last_heartbeat: dict[int, float] = {}


def algorithm_ids(keys: set[str]) -> dict[str, int]:
    """Map algorithm keys to ids; raise UnknownAlgorithm naming any that are missing."""
    found = dict(Algorithm.objects.filter(key__in=keys).values_list("key", "pk"))
    missing = sorted(keys - found.keys())
    if missing:
        raise UnknownAlgorithm(f"unknown algorithm(s): {', '.join(missing)}")
    return found


def save_result(job_id: int, result: PipelineResult) -> SaveOutcome:
    """Save one result and count it, once; `counted` is False for a repeat."""
    algorithms = algorithm_ids(result.algorithm_keys())
    with transaction.atomic(), abandon_connection_on_interrupt():
        _bound_lock_waits()
        detections, classifications = _insert(result, algorithms)
        stages = record_image_result(
            job_id,
            result.image_id,
            failed=result.error is not None,
            error=result.error or "",
            detections=detections,
            classifications=classifications,
        )
        if not stages:
            transaction.set_rollback(True)
    if not stages:
        return SaveOutcome(False, 0, 0, [])
    return SaveOutcome(True, detections, classifications, stages)


def _bound_lock_waits() -> None:
    # A lock wait past this ends as an OperationalError, which the task retries with backoff,
    # well before the Celery soft time limit would interrupt it.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{settings.RESULT_LOCK_TIMEOUT_MS}ms"])


def _insert(result: PipelineResult, algorithms: dict[str, int]) -> tuple[int, int]:
    boxes = {(algorithms[d.algorithm], d.bbox.as_tuple()): d for d in result.detections}
    if not boxes:
        return 0, 0
    Detection.objects.bulk_create(
        [
            Detection(
                source_image_id=result.image_id,
                algorithm_id=algorithm_id,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
                score=detection.score,
            )
            for (algorithm_id, box), detection in boxes.items()
        ],
        ignore_conflicts=True,
    )
    ids = {
        (row[0], (row[1], row[2], row[3], row[4])): row[5]
        for row in Detection.objects.filter(
            source_image_id=result.image_id, algorithm_id__in={a for a, _ in boxes}
        ).values_list("algorithm_id", "x1", "y1", "x2", "y2", "pk")
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


def process_result(
    job_id: int, result: PipelineResult, reply_subject: str, service_name: str = ""
) -> SaveOutcome:
    """Save, log, ack and maybe finish: the body of `process_nats_pipeline_result`."""
    outcome = save_result(job_id, result)
    log = job_logger(job_id)
    context = {"image_id": result.image_id}
    source = f" (from {service_name})" if service_name else ""
    if service_name:
        context["processing_service"] = service_name
    if outcome.counted:
        _heartbeat(job_id)
        if result.error is not None:
            log.error("Image %s failed%s: %s", result.image_id, source, result.error, extra=context)
        else:
            log.info(
                "Saved image %s%s: %d detections, %d classifications",
                result.image_id,
                source,
                outcome.detections,
                outcome.classifications,
                extra=context,
            )
    else:
        log.info("Result for image %s%s was already saved", result.image_id, source, extra=context)
    _ack(job_id, reply_subject)
    if outcome.complete or not outcome.counted:
        finish_if_complete(job_id)
    return outcome


def _heartbeat(job_id: int) -> None:
    now = time.monotonic()
    if now - _last_heartbeat.get(job_id, -HEARTBEAT_INTERVAL) >= HEARTBEAT_INTERVAL:
        if len(_last_heartbeat) > HEARTBEAT_MEMORY:
            _last_heartbeat.clear()  # long-lived workers see many jobs; keep this small
        _last_heartbeat[job_id] = now
        touch_heartbeat(job_id, min_interval=HEARTBEAT_INTERVAL)


def _ack(job_id: int, reply_subject: str) -> None:
    try:
        nats.ack(reply_subject)
    except (nats.NoRespondersError, nats.NatsTimeoutError):
        # Unconfirmed. Fine once the job is final or deleted: its stream is deleted (or being
        # deleted) and nothing is redelivered. Otherwise raise, and the task is retried.
        if not Job.objects.filter(pk=job_id).exclude(status__in=list(FINAL_STATES)).exists():
            return
        raise
