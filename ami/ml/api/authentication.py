"""Processing-service authentication: `Authorization: Api-Key <key>` (or `Token <key>`).

The key authenticates a `ProcessingService`, not a user (its current key, or the previous
one during a rotation window): only the processing-service views
list this class, and no other view recognizes it. `Token` is the keyword older clients of
the same protocol send (the upstream's user tokens); here it carries the same service key.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ami.ml.models import ProcessingService, hash_key

KEYWORDS = (b"api-key", b"token")  # compared case-insensitively
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


class ProcessingServicePrincipal:
    """The request's `user` for a processing service: authenticated, with no user rights."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, service: ProcessingService) -> None:
        self.service = service
        self.pk = None
        self.username = f"processing-service:{service.name}"

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


class ProcessingServiceAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ProcessingServicePrincipal, object] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Authorization header must be 'Api-Key <key>'")
        try:
            key = parts[1].decode()
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("The API key contains invalid characters") from exc
        service = service_of_key(key)
        if service is None:
            raise AuthenticationFailed("Unknown processing-service API key")
        if not service.is_active:
            raise AuthenticationFailed(
                f"The API key of processing service {service.name!r} was revoked"
            )
        _mark_seen(service)
        return ProcessingServicePrincipal(service), service

    def authenticate_header(self, request: Request) -> str:
        return 'Api-Key realm="processing-service"'


def service_of_key(key: str) -> ProcessingService | None:
    """The service whose current key, or previous key still within its rotation window,
    this is."""
    digest = hash_key(key)
    current = Q(key_hash=digest)
    previous = Q(previous_key_hash=digest, previous_key_expires_at__gt=timezone.now())
    return ProcessingService.objects.filter(current | previous).first()


def _mark_seen(service: ProcessingService) -> None:
    now = timezone.now()
    ProcessingService.objects.filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - LAST_SEEN_RESOLUTION),
        pk=service.pk,
    ).update(last_seen_at=now)


class IsProcessingService(BasePermission):
    message = "A processing-service API key is required (Authorization: Api-Key <key>)."

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, ProcessingService)
