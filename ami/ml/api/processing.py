"""The processing-service API: reserve tasks, post results.

`POST /api/jobs/{id}/tasks`  {"batch": N}  -> {"status": ..., "tasks": [Task, ...]}
`POST /api/jobs/{id}/result` {"results": [PipelineResult, ...]} -> 202 {"queued": N}

A result batch is validated whole (schema, images of this job, reply subjects of this job's
queue, known algorithms) before the first task is queued, so a bad batch queues nothing.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from pydantic import ValidationError
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ami.jobs.locking import touch_heartbeat
from ami.jobs.models import ImageTask, Job
from ami.jobs.states import JobStatus
from ami.ml.api.authentication import IsProcessingService, ProcessingServiceAuthentication
from ami.ml.api.images import signed_image_path
from ami.ml.models import Algorithm, ResultReceipt
from ami.ml.orchestration import nats
from ami.ml.schemas import ReserveRequest, ResultBatch, Task, TaskMessage, describe_errors
from ami.ml.tasks import process_nats_pipeline_result

logger = logging.getLogger(__name__)

RESERVE_HEARTBEAT_INTERVAL = 5.0  # seconds


class BoundedJSONParser(JSONParser):
    """JSON only; nesting too deep for the parser is a 400, not a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error: nested too deeply") from None


class ProcessingServiceView(APIView):
    authentication_classes = [ProcessingServiceAuthentication]
    permission_classes = [IsProcessingService]
    parser_classes = [BoundedJSONParser]

    def handle_exception(self, exc: Exception) -> Response:
        # A dropped or killed database connection is transient: tell the service to retry
        # (its requests are idempotent) instead of answering 500. Django discards the
        # broken connection when the request ends.
        if isinstance(exc, OperationalError | InterfaceError):
            logger.warning("Database unavailable for %s", self.request.path, exc_info=True)
            response = Response(
                {"detail": "the database is unavailable; retry later"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
            response["Retry-After"] = "1"
            return response
        return super().handle_exception(exc)

    def job_or_error(self, job_id: int) -> tuple[Job | None, Response | None]:
        job = Job.objects.filter(pk=job_id).only("status").first()
        if job is None:
            return None, Response(
                {"detail": f"job {job_id} does not exist"}, status=status.HTTP_404_NOT_FOUND
            )
        if job.is_final:
            return None, _gone(job)
        return job, None


def heartbeat_after_reserve(job_id: int) -> None:
    """Record that a service took work (results may take a while); never fail the reserve.

    The tasks are already pulled from NATS: a 503 now would strand them, unseen, until
    their ack wait runs out. A heartbeat is best effort, so a broken connection is logged.
    """
    try:
        touch_heartbeat(job_id, min_interval=RESERVE_HEARTBEAT_INTERVAL)
    except (OperationalError, InterfaceError):
        logger.warning("Could not record the heartbeat of job %s", job_id, exc_info=True)


def _gone(job: Job) -> Response:
    return Response(
        {"detail": f"job {job.pk} is {job.status}: it takes no more work", "status": job.status},
        status=status.HTTP_410_GONE,
    )


def _invalid(errors: list[dict[str, str]]) -> Response:
    fields = ", ".join(error["field"] for error in errors[:5])
    return Response(
        {"detail": f"invalid field(s): {fields}", "errors": errors},
        status=status.HTTP_400_BAD_REQUEST,
    )


class ReserveTasksView(ProcessingServiceView):
    def post(self, request: Request, job_id: int) -> Response:
        try:
            wanted = ReserveRequest.model_validate(request.data or {})
        except ValidationError as exc:
            return _invalid(describe_errors(exc))
        job, error = self.job_or_error(job_id)
        if error:
            return error
        if job.status != JobStatus.STARTED:
            return Response({"status": job.status, "tasks": []})
        try:
            reserved = nats.reserve(job_id, min(wanted.batch, settings.PROCESSING_MAX_BATCH))
        except nats.TaskQueueGone:
            job.refresh_from_db(fields=["status"])
            return _gone(job) if job.is_final else Response({"status": job.status, "tasks": []})
        except (nats.NatsError, nats.NatsTimeoutError):
            logger.warning("Could not reserve tasks of job %s", job_id, exc_info=True)
            return Response(
                {"detail": "the task queue is unavailable; retry later"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if reserved:
            heartbeat_after_reserve(job_id)
        tasks = [self.task(request, item) for item in reserved]
        return Response({"status": job.status, "tasks": [t.model_dump() for t in tasks]})

    def task(self, request: Request, item: nats.ReservedTask) -> Task:
        message = TaskMessage.model_validate(item.payload)
        return Task(
            image_id=message.image_id,
            image_url=request.build_absolute_uri(signed_image_path(message.image_id)),
            reply_subject=item.reply_subject,
            attempt=item.delivered,
        )


class PostResultsView(ProcessingServiceView):
    def post(self, request: Request, job_id: int) -> Response:
        body = {"results": request.data} if isinstance(request.data, list) else request.data
        try:
            batch = ResultBatch.model_validate(body)
        except ValidationError as exc:
            return _invalid(describe_errors(exc))
        job, error = self.job_or_error(job_id)
        if error:
            return error
        errors = batch_errors(job_id, batch)
        if errors:
            return _invalid(errors)
        record_receipts(job_id, [result.image_id for result in batch.results])
        for result in batch.results:
            process_nats_pipeline_result.apply_async(
                args=[job_id, result.model_dump(mode="json"), result.reply_subject]
            )
        return Response({"queued": len(batch.results)}, status=status.HTTP_202_ACCEPTED)


def record_receipts(job_id: int, image_ids: list[int]) -> None:
    """Remember that these images have a valid result on its way (idempotent).

    Written before the results are queued: however long they wait in the queue, the
    undeliverable-task check will not fail their images.
    """
    ResultReceipt.objects.bulk_create(
        [ResultReceipt(job_id=job_id, image_id=image_id) for image_id in set(image_ids)],
        ignore_conflicts=True,
    )


def batch_errors(job_id: int, batch: ResultBatch) -> list[dict[str, str]]:
    """What in a schema-valid batch does not fit this job; [] if it all does."""
    image_ids = {result.image_id for result in batch.results}
    known_images = set(
        ImageTask.objects.filter(job_id=job_id, source_image_id__in=image_ids).values_list(
            "source_image_id", flat=True
        )
    )
    keys = set().union(*(result.algorithm_keys() for result in batch.results))
    known_keys = set(Algorithm.objects.filter(key__in=keys).values_list("key", flat=True))
    ack_prefix = f"$JS.ACK.{nats.stream_name(job_id)}.{nats.consumer_name(job_id)}."
    errors = []
    for i, result in enumerate(batch.results):
        where = f"results.{i}"
        if result.image_id not in known_images:
            errors.append(_error(f"{where}.image_id", f"image {result.image_id} is not in job"))
        if not result.reply_subject.startswith(ack_prefix):
            errors.append(_error(f"{where}.reply_subject", "not a task of this job"))
        for j, detection in enumerate(result.detections):
            if detection.algorithm not in known_keys:
                errors.append(_error(f"{where}.detections.{j}.algorithm", "unknown algorithm"))
            for k, classification in enumerate(detection.classifications):
                if classification.algorithm not in known_keys:
                    field = f"{where}.detections.{j}.classifications.{k}.algorithm"
                    errors.append(_error(field, "unknown algorithm"))
    return errors


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}
