"""Per-service request rate of the processing-service API (`AMI_SERVICE_RATE`)."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from ami.ml.models import ProcessingService


class ServiceRateThrottle(SimpleRateThrottle):
    """Requests per authenticated service, whatever its address; over the rate, a 429 with
    `Retry-After`. Runs after authentication, so only a valid key is counted."""

    scope = "service"

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if not isinstance(request.auth, ProcessingService):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
