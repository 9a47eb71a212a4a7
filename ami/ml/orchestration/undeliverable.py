"""Images whose task NATS stopped delivering (max deliveries reached) fail, so jobs finish.

NATS gives up on a task after `NATS_TASK_MAX_DELIVER` deliveries without an ack, e.g. an
image that crashes every processing service that takes it. Its image would stay PENDING
and the job would wait for the stale check. When the job's consumer has nothing pending and
nothing awaiting an ack, every image still PENDING can no longer get a result: each is
marked FAILED and counted, exactly once, and the job finishes.

Why it is safe: a result is acked only after its commit, so while a result is in flight its
message is still awaiting an ack. Reading "nothing awaiting an ack" first and the PENDING
images second therefore never fails an image whose result was saved. A result that waits in
the Celery queue longer than NATS keeps redelivering (ack wait x max deliveries) is not in
flight for NATS any more; the receipt the API wrote before queueing it (`ResultReceipt`)
keeps its image from being failed. Should that queued result be lost, the stale-job check
ends the job.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F

from ami.jobs.locking import add_increment, claim_images, fold_increments
from ami.jobs.logging import job_logger
from ami.jobs.models import ImageTask
from ami.jobs.states import JobStatus, TaskState
from ami.ml.models import ResultReceipt, TaskPublication
from ami.ml.orchestration import nats
from ami.ml.orchestration.finish import finish_if_complete

logger = logging.getLogger(__name__)


def fail_undeliverable_tasks() -> dict[int, int]:
    """Check every running, published job; return {job id: images failed} for those fixed."""
    published = TaskPublication.objects.filter(
        published__gte=F("total"), job__status=JobStatus.STARTED
    ).values_list("job_id", flat=True)
    fixed = {}
    for job_id in published:
        failed = fail_undeliverable(job_id)
        if failed:
            fixed[job_id] = failed
    return fixed


def fail_undeliverable(job_id: int) -> int:
    """Fail the job's PENDING images if NATS will deliver none of them again; return count."""
    try:
        state = nats.consumer_state(job_id)
    except (nats.NatsError, nats.NatsTimeoutError):
        logger.warning("Could not read the task queue of job %s", job_id, exc_info=True)
        return 0
    if state is None or state.pending or state.ack_pending:
        return 0
    reason = f"no result after {settings.NATS_TASK_MAX_DELIVER} deliveries"
    with transaction.atomic():
        failed = claim_images(job_id, dict.fromkeys(images_without_a_result(job_id), reason))
        add_increment(job_id, processed=0, failed=len(failed), detections=0, classifications=0)
    fold_increments(job_id)
    for image_id in sorted(failed):
        job_logger(job_id).error(
            "Image %s failed: %s", image_id, reason, extra={"image_id": image_id}
        )
    if failed:
        finish_if_complete(job_id)
    return len(failed)


def images_without_a_result(job_id: int) -> list[int]:
    """PENDING images of the job for which no valid result was ever accepted."""
    received = ResultReceipt.objects.filter(job_id=job_id).values("image_id")
    pending = ImageTask.objects.filter(job_id=job_id, state=TaskState.PENDING)
    return list(
        pending.exclude(source_image_id__in=received).values_list("source_image_id", flat=True)
    )
