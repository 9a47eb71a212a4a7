"""Processing-service authentication: `Authorization: Bearer <token>`.

The token authenticates a `ProcessingService`, not a user: only views that list this class
accept it (reserving tasks and posting results), and no other view recognizes it.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ami.ml.models import ProcessingService, hash_token

KEYWORD = b"bearer"
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
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        try:
            token = parts[1].decode()
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Token contains invalid characters") from exc
        service = ProcessingService.objects.filter(
            token_hash=hash_token(token), is_active=True
        ).first()
        if service is None:
            raise AuthenticationFailed("Invalid or inactive processing-service token")
        _mark_seen(service)
        return ProcessingServicePrincipal(service), service

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="processing-service"'


def _mark_seen(service: ProcessingService) -> None:
    now = timezone.now()
    ProcessingService.objects.filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - LAST_SEEN_RESOLUTION),
        pk=service.pk,
    ).update(last_seen_at=now)


class IsProcessingService(BasePermission):
    message = "A processing-service token is required."

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, ProcessingService)
