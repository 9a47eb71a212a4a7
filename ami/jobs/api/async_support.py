"""What the async views share: authentication, job lookup and database calls off the loop.

Database calls run on the event loop's shared thread pool (`thread_sensitive=False`), so a
thousand open streams use a handful of threads and connections, not one each.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.contrib.auth import aauthenticate
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, connections
from django.http import HttpRequest, JsonResponse

from ami.jobs.access import visible_jobs
from ami.jobs.api.log_query import BadLogQuery
from ami.jobs.models import Job

T = TypeVar("T")


CONNECTION_CHECK_INTERVAL = 5.0  # seconds between health checks of a pool thread's connection
_pool_thread = threading.local()


def _fresh_connection_call(func: Callable[..., T], *args: Any) -> T:
    # Pool threads never see request_finished: drop a dead or expired connection here, at
    # most every few seconds (each check costs a round trip).
    now = time.monotonic()
    if now - getattr(_pool_thread, "checked_at", 0.0) > CONNECTION_CHECK_INTERVAL:
        close_old_connections()
        _pool_thread.checked_at = now
    return func(*args)


async def db(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking database call on the shared pool and return its result."""
    return await sync_to_async(_fresh_connection_call, thread_sensitive=False)(func, *args)


def release_request_thread() -> None:
    """Let the request's own worker thread go for the rest of a long response.

    Django's middleware runs its sync hooks in a thread kept for the whole request (asgiref's
    thread-sensitive context), so each open stream would park one idle thread and its
    database connection. Called from inside the response body (after the middleware ran),
    this closes that connection and shuts the thread down; the stream's own queries use the
    shared pool (`db`). Anything thread-sensitive later in the request gets a fresh thread.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:
        return  # no context, or one whose executor belongs to someone else
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.submit(connections.close_all)
        executor.shutdown(wait=False)


async def authenticated_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The session's user, or the one named by HTTP Basic credentials, or None."""
    user = await request.auser()
    if user.is_authenticated:
        return user
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = await aauthenticate(request, username=username, password=password)
    return user if user is not None and user.is_active else None


async def visible_job(request: HttpRequest, job_id: int) -> tuple[Job | None, JsonResponse | None]:
    """The job if the request's user may see it, else the error response to send."""
    user = await authenticated_user(request)
    if user is None:
        detail = {"detail": "Authentication credentials were not provided."}
        return None, JsonResponse(detail, status=403)
    job = await visible_jobs(user).filter(pk=job_id).afirst()
    if job is None:
        return None, JsonResponse({"detail": "No Job matches the given query."}, status=404)
    return job, None


def bad_query_response(error: BadLogQuery) -> JsonResponse:
    return JsonResponse(error.errors, status=400)
