"""A client written from the protocol's facts drives the real stack, as an ADC worker would.

`ProtocolClient` is built from docs/api.md alone (no code of ours): the upstream's URLs
with and without slashes, `Token` auth, `pipeline__slug__in` polling, `batch_size` paging
until `{"tasks": []}`, image downloads without auth, `{"results": [...]}` posts in chunks
with per-image errors, and GETs retried after a 5xx (as ADC's urllib3 `Retry` does; POSTs
never). Its GETs go through a proxy that answers every third GET with a 502.
"""

from __future__ import annotations

import http.server
import os
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import ImageTask, Job, JobStage
from ami.jobs.states import JobStatus, StageKey, TaskState
from ami.main.models import Classification, Detection
from ami.ml.models import Pipeline, ResultReceipt
from ami_lab.demo.setup import ensure_images, ensure_pipeline
from ami_lab.servers.base import free_port
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# The incident's size (742 images, about 25 s) runs with AMI_FULL_SIZE=1; make test runs 60.
FULL_SIZE = pytest.mark.skipif(not os.environ.get("AMI_FULL_SIZE"), reason="AMI_FULL_SIZE=1")
IMAGES = [60, pytest.param(742, marks=[pytest.mark.slow, FULL_SIZE], id="742")]
BATCH_SIZE = 7  # tasks per reservation: pages of 7 until the queue is drained
RESULTS_PER_POST = 10
FAIL_EVERY = 12  # every 12th image is posted as a per-image error
PIPELINE = "protocol_moths_2026"
GET_RETRIES = 3  # ADC: Retry(total=3, status_forcelist=(500, 502, 503, 504), GET only)
POLL_PAUSE = 0.3  # seconds between polls when there is nothing to do (ADC: 5)


@pytest.fixture
def image_count(request) -> int:
    return request.param


@pytest.fixture
def demo_project(media_root, image_count):
    """The stack's project with `image_count` images (overrides the 16-image fixture)."""
    return ensure_images(image_count), ensure_pipeline()


class FlakyProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Forwards to the web server; every third GET gets a 502 instead."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.gets = 0
        self.failed_gets = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), _ProxyHandler)

    def should_fail(self) -> bool:
        with self.lock:
            self.gets += 1
            if self.gets % 3 == 0:
                self.failed_gets += 1
                return True
            return False


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: FlakyProxy

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.server.should_fail():
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.forward(None)

    def do_POST(self) -> None:
        self.forward(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def forward(self, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        response = httpx.request(
            self.command, self.server.upstream + self.path, headers=headers, content=body,
            timeout=60,
        )  # fmt: skip
        self.send_response(response.status_code)
        for name in ("Content-Type", "Location"):
            if name in response.headers:
                self.send_header(name, response.headers[name])
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)


@pytest.fixture
def proxy(stack) -> Iterator[FlakyProxy]:
    server = FlakyProxy(stack.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class ProtocolClient:
    """The protocol as docs/api.md states it, nothing more."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base = base_url  # includes /api/v2
        self.api = httpx.Client(headers={"Authorization": f"Token {key}"}, timeout=60)
        self.images = httpx.Client(timeout=30)  # image downloads carry no auth
        self.retried = 0

    def get(self, url: str, **params) -> httpx.Response:
        for attempt in range(GET_RETRIES + 1):
            response = self.api.get(url, params=params, follow_redirects=True)
            if response.status_code not in (500, 502, 503, 504) or attempt == GET_RETRIES:
                response.raise_for_status()
                return response
            self.retried += 1
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def post(self, url: str, body: object) -> dict:
        response = self.api.post(url, json=body)
        assert response.status_code in (200, 201), (url, response.status_code, response.text)
        return response.json()

    def projects(self) -> list[dict]:
        return self.get(f"{self.base}/projects/").json()["results"]

    def register(self, project_id: int, pipelines: list[dict]) -> dict:
        body = {"processing_service_name": "protocol client (test-host)", "pipelines": pipelines}
        return self.post(f"{self.base}/projects/{project_id}/pipelines/", body)

    def jobs(self, slugs: list[str]) -> list[dict]:
        response = self.get(
            f"{self.base}/jobs",
            pipeline__slug__in=",".join(slugs), ids_only=1, incomplete_only=1,
            dispatch_mode="async_api",
        )  # fmt: skip
        return response.json()["results"]

    def tasks(self, job_id: int) -> list[dict]:
        return self.post(f"{self.base}/jobs/{job_id}/tasks/", {"batch_size": BATCH_SIZE})["tasks"]

    def post_results(self, job_id: int, results: list[dict]) -> int:
        queued = 0
        for start in range(0, len(results), RESULTS_PER_POST):
            chunk = results[start : start + RESULTS_PER_POST]
            answer = self.post(f"{self.base}/jobs/{job_id}/result/", {"results": chunk})
            assert answer["status"] == "accepted" and answer["job_id"] == job_id
            queued += answer["results_queued"]
        return queued

    def process(self, slug: str, task: dict) -> dict:
        assert isinstance(task["id"], str) and isinstance(task["image_id"], str)
        image = self.images.get(task["image_url"])
        image.raise_for_status()
        if int(task["image_id"]) % FAIL_EVERY == 0:
            failure = {"error": "failed to load image", "image_id": task["image_id"]}
            return {"reply_subject": task["reply_subject"], "result": failure}
        now = datetime.now(UTC).isoformat()
        classification = {
            "classification": "Noctua pronuba",
            "labels": ["Noctua pronuba", "Catocala"],
            "scores": [0.8, 0.2],
            "logits": [2.1, 0.7],
            "features": None,
            "ood_score": None,
            "inference_time": 0.01,
            "algorithm": {"name": "Species", "key": "protocol_species"},
            "terminal": True,
            "timestamp": now,
        }
        detection = {
            "source_image_id": task["image_id"],
            "bbox": {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0},
            "inference_time": 0.02,
            "algorithm": {"name": "Detector", "key": "protocol_detector"},
            "timestamp": now,
            "crop_image_url": None,
            "classifications": [classification],
        }
        result = {
            "pipeline": slug,
            "algorithms": {},
            "total_time": 0.05,
            "source_images": [{"id": task["image_id"], "url": task["image_url"]}],
            "detections": [detection],
            "deployments": None,
            "config": {"example_config_param": None},
        }
        return {"reply_subject": task["reply_subject"], "result": result}

    def work(self, slugs: list[str], until: threading.Event) -> None:
        """The worker loop: poll, drain each job, post; pause when nothing was done."""
        while not until.is_set():
            did_work = False
            for job in self.jobs(slugs):
                assert job["pipeline_slug"] in slugs
                while tasks := self.tasks(job["id"]):
                    did_work = True
                    results = [self.process(job["pipeline_slug"], task) for task in tasks]
                    assert self.post_results(job["id"], results) == len(results)
            if not did_work:
                until.wait(POLL_PAUSE)


PIPELINE_CONFIG = {
    "name": "Protocol moths",
    "slug": PIPELINE,
    "version": 1,
    "description": None,
    "algorithms": [
        {"name": "Detector", "key": "protocol_detector", "task_type": "localization",
         "version": 1, "category_map": None},
        {"name": "Species", "key": "protocol_species", "task_type": "classification",
         "version": 1, "category_map": {"data": [], "labels": ["Noctua pronuba", "Catocala"]}},
    ],
    "stages": [],
}  # fmt: skip


@pytest.mark.parametrize("image_count", IMAGES, indirect=True)
def test_a_protocol_client_registers_polls_and_drains_a_job(
    stack, demo_project, proxy, image_count
):
    project, _ = demo_project
    stack.celery("celery", "jobs,ml_results", concurrency=4)
    client = ProtocolClient(f"http://127.0.0.1:{proxy.server_address[1]}/api/v2", stack.key)

    assert project.pk in [p["id"] for p in client.projects()]
    summary = client.register(project.pk, [PIPELINE_CONFIG])
    assert summary["pipelines_created"] == [PIPELINE]
    again = client.register(project.pk, [PIPELINE_CONFIG])
    assert (again["pipelines_created"], again["pipelines_updated"]) == ([], [PIPELINE])

    pipeline = Pipeline.objects.get(slug=PIPELINE)
    job = create_job(project, pipeline, "protocol client", {"limit": image_count})
    start_job(job.pk)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.work([PIPELINE, "some_other_pipeline"], stop)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        wait_until(lambda: errors or _final(job), "the job to finish", limit=120)
    finally:
        stop.set()
        worker.join(30)
    assert not errors, errors

    image_ids = job.project.images.values_list("pk", flat=True)
    failed = sum(1 for image_id in image_ids if image_id % FAIL_EVERY == 0)
    succeeded = image_count - failed
    # The images the client fails on purpose make it "finished, some failed", never SUCCESS.
    expected = JobStatus.COMPLETED_WITH_ERRORS if failed else JobStatus.SUCCESS
    assert job.status == expected, job.failure_reason
    stage = JobStage.objects.get(job=job, key=StageKey.PROCESS)
    assert (stage.total, stage.processed, stage.failed) == (image_count, succeeded, failed)
    detections = Detection.objects.filter(algorithm__key="protocol_detector").count()
    assert stage.detections == detections == succeeded
    species = Classification.objects.filter(algorithm__key="protocol_species").count()
    assert species == succeeded
    assert not ImageTask.objects.filter(job=job, state=TaskState.PENDING).exists()
    assert ImageTask.objects.filter(job=job, state=TaskState.FAILED).count() == failed
    services = set(
        ResultReceipt.objects.filter(job=job).values_list("processing_service__name", flat=True)
    )
    assert services == {"demo workers"}
    assert client.jobs([PIPELINE]) == []  # complete: no longer offered
    assert proxy.failed_gets > 0 and client.retried == proxy.failed_gets


def _final(job: Job) -> Job | None:
    job.refresh_from_db()
    return job if job.is_final else None
