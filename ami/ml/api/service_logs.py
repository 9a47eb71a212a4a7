"""`POST /api/v2/jobs/{id}/logs/`: a processing service adds lines to a job's log.

`{"logs": [{"level": "INFO" | 0-50, "message", "timestamp"?, "context"?}, ...]}` -> `{"status":
"accepted", "job_id", "lines_logged"}`. Each line goes through the job logger, so every log
backend, its sanitising and its storm protection apply; the line's context names the
service (`processing_service_id`, `processing_service`), which the log API filters on.
Posts are bounded (lines, message length, body size) and rate-limited per service
(`AMI_SERVICE_LOG_RATE`): over the rate the answer is 429 with `Retry-After`.
"""

from __future__ import annotations

from django.conf import settings
from pydantic import ValidationError
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from ami.jobs.logging import job_logger
from ami.ml.api import wire
from ami.ml.api.processing import ProcessingServiceView, invalid
from ami.ml.api.schema import log_post_schema
from ami.ml.models import ProcessingService

MAX_LOG_POST_BYTES = 2 * 1024 * 1024  # a full post of long lines fits; larger is refused


class ServiceLogThrottle(SimpleRateThrottle):
    """Log posts per processing service (its key, not its address), in the shared cache."""

    scope = "service_logs"

    def get_rate(self) -> str:
        return settings.SERVICE_LOG_RATE

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if not isinstance(request.auth, ProcessingService):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class ServiceLogsView(ProcessingServiceView):
    throttle_classes = [ServiceLogThrottle]

    @log_post_schema
    def post(self, request: Request, job_id: int) -> Response:
        if _content_length(request) > MAX_LOG_POST_BYTES:
            detail = f"a log post is limited to {MAX_LOG_POST_BYTES} bytes; send fewer lines"
            return Response({"detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        try:
            post = wire.LogPost.model_validate(request.data)
        except ValidationError as exc:
            return invalid(wire.describe(exc))
        job, error = self.job_or_error(job_id, final_ok=True)
        if error:
            return error
        log = job_logger(job.pk)
        for line in post.logs:
            log.log(line.level, "%s", line.message, extra=self.context_of(line))
        return Response({"status": "accepted", "job_id": job.pk, "lines_logged": len(post.logs)})

    def context_of(self, line: wire.LogLine) -> dict:
        """The service's own context, then who sent it (which the service cannot override)."""
        context = dict(line.context or {})
        if line.timestamp is not None:
            context["service_timestamp"] = line.timestamp.isoformat()
        context["processing_service_id"] = self.service.pk
        context["processing_service"] = self.service.name
        return context


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
