"""The processing-service protocol's task and result endpoints (docs/api.md).

`POST /api/v2/jobs/{id}/tasks/`  {"batch_size": N}  -> {"tasks": [task, ...]}, [] when drained
`GET  /api/v2/jobs/{id}/tasks?batch=N`  the same, as older clients ask
`POST /api/v2/jobs/{id}/result/` {"results": [{reply_subject, result}, ...]} (or a bare list)
    -> {"status": "accepted", "job_id": id, "results_queued": N}

A result post is read as a stream, one result at a time (`result_stream`: 150 MB posts
never sit in memory), and validated whole (shapes, images of this job, reply subjects of
this job's queue, algorithms of its pipeline) before the first task is queued, so a bad
post queues nothing. Each result is converted to our own `PipelineResult`; the post's
results are queued in chunks (`RESULT_TASK_MAX_RESULTS`, `RESULT_TASK_MAX_BYTES`), each
saved by one `save_results` task in one transaction.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import OpenApiParameter
from pydantic import ValidationError
from rest_framework import status
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ami.jobs.locking import touch_heartbeat
from ami.jobs.models import ImageTask, Job
from ami.jobs.states import JobStatus
from ami.main.api import query_int
from ami.ml.access import jobs_for_service
from ami.ml.api import result_stream, wire
from ami.ml.api.authentication import IsProcessingService, ProcessingServiceAuthentication
from ami.ml.api.images import signed_image_path
from ami.ml.api.schema import protocol
from ami.ml.api.throttling import ServiceRateThrottle
from ami.ml.models import Algorithm, Pipeline, ProcessingService, ResultReceipt
from ami.ml.orchestration import nats
from ami.ml.schemas import TaskMessage
from ami.ml.tasks import save_results

logger = logging.getLogger(__name__)

RESERVE_HEARTBEAT_INTERVAL = 5.0  # seconds
DEFAULT_GET_BATCH = 10  # tasks, when an older client's `GET .../tasks` names no `batch`


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
    throttle_classes = [ServiceRateThrottle]
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

    @property
    def service(self) -> ProcessingService:
        return self.request.auth

    def job_or_error(
        self, job_id: int, final_ok: bool = False
    ) -> tuple[Job | None, Response | None]:
        """The job, or a 404 if there is none, or a 410 if it is final (unless `final_ok`)."""
        jobs = jobs_for_service(self.service).only("status", "pipeline_id")
        job = jobs.filter(pk=job_id).first()
        if job is None:
            return None, Response(
                {"detail": f"job {job_id} does not exist"}, status=status.HTTP_404_NOT_FOUND
            )
        if job.is_final and not final_ok:
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


def invalid(errors: list[dict[str, str]]) -> Response:
    fields = ", ".join(error["field"] for error in errors[:5])
    return Response(
        {"detail": f"invalid field(s): {fields}", "errors": errors},
        status=status.HTTP_400_BAD_REQUEST,
    )


class ReserveTasksView(ProcessingServiceView):
    @protocol("Reserve up to batch_size tasks", body=True)
    def post(self, request: Request, job_id: int) -> Response:
        try:
            wanted = wire.TasksRequest.model_validate(request.data or {})
        except ValidationError as exc:
            return invalid(wire.describe(exc))
        return self.reserve(request, job_id, wanted.batch_size)

    @protocol("Reserve tasks (older clients)", parameters=[OpenApiParameter("batch", int)])
    def get(self, request: Request, job_id: int) -> Response:
        """Older clients: `GET .../tasks?batch=N`."""
        batch = query_int(request.query_params, "batch", minimum=1, maximum=wire.MAX_ID)
        return self.reserve(request, job_id, batch or DEFAULT_GET_BATCH)

    def reserve(self, request: Request, job_id: int, batch: int) -> Response:
        """Up to `batch` tasks; `{"tasks": []}` for a job not running (yet, or any more),
        as upstream answers: clients stop asking at the first empty list."""
        job, error = self.job_or_error(job_id, final_ok=True)
        if error:
            return error
        if job.status != JobStatus.STARTED:
            return Response({"tasks": []})
        try:
            reserved = nats.reserve(job_id, min(batch, settings.PROCESSING_MAX_BATCH))
        except nats.TaskQueueGone:
            return Response({"tasks": []})
        except (nats.NatsError, nats.NatsTimeoutError):
            logger.warning("Could not reserve tasks of job %s", job_id, exc_info=True)
            return Response(
                {"detail": "the task queue is unavailable; retry later"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if reserved:
            heartbeat_after_reserve(job_id)
        return Response({"tasks": [self.task(request, job_id, item) for item in reserved]})

    def task(self, request: Request, job_id: int, item: nats.ReservedTask) -> dict:
        """One task as the protocol has it: ids as strings; `attempt` is ours, extra."""
        image_id = TaskMessage.model_validate(item.payload).image_id
        return {
            "id": f"{job_id}-{image_id}",
            "image_id": str(image_id),
            "image_url": request.build_absolute_uri(signed_image_path(image_id)),
            "reply_subject": item.reply_subject,
            "attempt": item.delivered,
        }


class PostResultsView(ProcessingServiceView):
    """Results are read from the request stream, one at a time (`result_stream`), so a
    batch of 150 MB never sits in memory; `request.data` is never read here."""

    @protocol("Post results and per-image errors", body=True)
    def post(self, request: Request, job_id: int) -> Response:
        if request.content_type.split(";")[0].strip() not in ("application/json", ""):
            raise UnsupportedMediaType(request.content_type)
        job, error = self.job_or_error(job_id)
        if error:
            return error
        batch = result_stream.stage(request.stream)
        try:
            if batch.errors:
                return invalid(batch.errors)
            errors = batch_errors(job, batch.summaries)
            if errors:
                return invalid(errors)
            record_receipts(job_id, [item.image_id for item in batch.summaries], self.service)
            for chunk in batch.chunks(
                settings.RESULT_TASK_MAX_RESULTS, settings.RESULT_TASK_MAX_BYTES
            ):
                save_results.apply_async(
                    args=[job_id, chunk], kwargs={"service_name": self.service.name}
                )
        finally:
            batch.close()
        queued = len(batch.summaries)
        return Response({"status": "accepted", "job_id": job_id, "results_queued": queued})


def record_receipts(job_id: int, image_ids: list[int], service: ProcessingService) -> None:
    """Remember that these images have a valid result on its way, and from whom (idempotent:
    the first receipt of an image stays).

    Written before the results are queued: however long they wait in the queue, the
    undeliverable-task check will not fail their images.
    """
    ResultReceipt.objects.bulk_create(
        [
            ResultReceipt(job_id=job_id, image_id=image_id, processing_service=service)
            for image_id in set(image_ids)
        ],
        ignore_conflicts=True,
    )


def batch_errors(job: Job, results: list[result_stream.ResultSummary]) -> list[dict[str, str]]:
    """What in a well-formed post does not fit this job; [] if it all does."""
    job_id = job.pk
    image_ids = {item.image_id for item in results}
    known_images = set(
        ImageTask.objects.filter(job_id=job_id, source_image_id__in=image_ids).values_list(
            "source_image_id", flat=True
        )
    )
    pipeline = Pipeline.objects.filter(pk=job.pipeline_id).first()
    keys = set().union(*(item.algorithm_fields for item in results))
    known_keys = set(Algorithm.objects.filter(key__in=keys).values_list("key", flat=True))
    pipeline_keys = (
        set(pipeline.algorithms.filter(key__in=keys).values_list("key", flat=True))
        if pipeline
        else set()
    )
    ack_prefix = f"$JS.ACK.{nats.stream_name(job_id)}.{nats.consumer_name(job_id)}."
    errors = []
    for item in results:
        where = f"results.{item.index}"
        if not item.reply_subject.startswith(ack_prefix):
            errors.append(_error(f"{where}.reply_subject", "not a task of this job"))
        image_field = "source_images.0.id" if item.succeeded else "image_id"
        if item.image_id not in known_images:
            field = f"{where}.result.{image_field}"
            errors.append(_error(field, f"image {item.image_id} is not in job {job_id}"))
        if not item.succeeded:
            continue
        if pipeline is None or item.pipeline != pipeline.slug:
            expected = pipeline.slug if pipeline else None
            errors.append(_error(f"{where}.result.pipeline", f"job {job_id} runs {expected!r}"))
        for j in item.foreign_detections:
            field = f"{where}.result.detections.{j}.source_image_id"
            errors.append(_error(field, "not the result's image"))
        for key, field in item.algorithm_fields.items():
            errors.extend(_algorithm_error(field, key, known_keys, pipeline_keys))
    return errors


def _algorithm_error(field: str, key: str, known: set[str], of_pipeline: set[str]) -> list:
    if key not in known:
        return [_error(field, f"unknown algorithm {key!r}")]
    if key not in of_pipeline:
        return [_error(field, f"algorithm {key!r} is not in the job's pipeline")]
    return []


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}
