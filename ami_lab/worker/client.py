"""HTTP client of the processing-service protocol (`/api/v2`), with retry and backoff.

Authenticates with `Authorization: Api-Key <key>`; see docs/api.md for the protocol.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

logger = logging.getLogger(__name__)

# 500 too: every request of the protocol is idempotent, and a server error is often a
# passing one (a restarted database); a persistent one still stops after MAX_ATTEMPTS.
RETRY_STATUSES = {429, 500, 502, 503, 504}
FIRST_BACKOFF = 0.5  # seconds
MAX_BACKOFF = 15.0  # seconds
MAX_ATTEMPTS = 8


class JobFinished(Exception):
    """The job is final (or gone): the server takes no more work for it."""


class ApiError(RuntimeError):
    """The server refused a request for a reason retrying cannot fix."""


class Stopping(ApiError):
    """A stop was requested while a request that need not finish was being retried."""


API_PATH = "/api/v2"


def api_base(url: str) -> str:
    """The protocol's base URL from a site URL (`http://host:8000`) or the base itself."""
    url = url.rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


class ProcessingClient:
    def __init__(self, url: str, key: str, stop: threading.Event, timeout: float = 30.0):
        self.stop = stop
        self.http = httpx.Client(
            base_url=api_base(url), headers={"Authorization": f"Api-Key {key}"}, timeout=timeout
        )

    def close(self) -> None:
        self.http.close()

    def register(self, project_id: int, pipelines: list[dict]) -> dict:
        """Register pipeline configs with a project; the server's summary."""
        return self._request(
            "POST", f"/projects/{project_id}/pipelines/", json={"pipelines": pipelines}
        )

    def reserve(self, job_id: int, batch: int) -> list[dict]:
        """Reserve up to `batch` tasks; [] when none is available right now."""
        body = self._request(
            "POST", f"/jobs/{job_id}/tasks/", persist=False, json={"batch_size": batch}
        )
        return body["tasks"]

    def open_job(self, job_id: int, pipeline_slug: str) -> dict | None:
        """The job as the job list shows it while it takes work (incomplete), else None."""
        params = {"pipeline__slug": pipeline_slug, "incomplete_only": 1, "limit": 1000}
        body = self._request("GET", "/jobs", persist=False, params=params)
        return next((item for item in body["results"] if item["id"] == job_id), None)

    def post_results(self, job_id: int, results: list[dict]) -> int:
        body = self._request("POST", f"/jobs/{job_id}/result/", json={"results": results})
        return body["results_queued"]

    def post_log(self, job_id: int, message: str, level: str = "INFO") -> bool:
        """Add a line to the job's log. Best effort: one try, never retried (nor a 429)."""
        line = {"level": level, "message": message}
        try:
            response = self.http.post(f"/jobs/{job_id}/logs/", json={"logs": [line]})
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def download(self, url: str) -> bytes:
        response = self._send("GET", url, True)
        if response.status_code != 200:
            raise ApiError(f"GET image: HTTP {response.status_code}")
        return response.content

    def _request(self, method: str, path: str, persist: bool = True, **kwargs: Any) -> dict:
        response = self._send(method, path, persist, **kwargs)
        if response.status_code in (404, 410):
            raise JobFinished(response.json().get("detail", response.text))
        if response.status_code >= 400:
            raise ApiError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def _send(self, method: str, url: str, persist: bool, **kwargs: Any) -> httpx.Response:
        """Send with exponential backoff on connection errors and 429/5xx.

        A stop request ends the retries of a request that need not finish (`persist`
        False: a reservation); posting results keeps trying, so finished work is not lost.
        """
        delay = FIRST_BACKOFF
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.http.request(method, url, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if attempt == MAX_ATTEMPTS:
                break
            logger.warning("%s %s failed (%s); retry in %.1fs", method, url, problem, delay)
            if self.stop.wait(delay) and not persist:
                raise Stopping(f"{method} {url}: stop requested")
            delay = min(delay * 2, MAX_BACKOFF)
        raise ApiError(f"{method} {url}: gave up after {MAX_ATTEMPTS} attempts ({problem})")
