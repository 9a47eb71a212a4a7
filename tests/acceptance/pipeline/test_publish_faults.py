"""A job started while NATS is down finishes once NATS is back: the real Celery retry.

The hand reproduction of issue 9 item 1, automated: NATS stopped, the job started, the
`run_job` Celery task fails and is retried by Celery itself, NATS is started again on the
same port, and a processing worker runs the job to SUCCESS with every image processed.
"""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import Job, JobStage
from ami.jobs.states import JobStatus, StageKey
from ami_lab.servers import SERVERS
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

JOB_LIMIT = 180.0  # seconds for the whole job, NATS outage and Celery backoff included


@pytest.fixture
def stack_extra_env() -> dict[str, str]:
    return {"AMI_NATS_REQUEST_TIMEOUT": "1", "AMI_NATS_FAILOVER_TIMEOUT": "0"}


@pytest.fixture
def nats_server():
    """The embedded NATS server, running again (same port, same data) after the test."""
    server = SERVERS["nats"]
    state = server.read_state()
    if state is None:
        pytest.skip("NATS is not the embedded server: it cannot be stopped here")
    yield server
    if not server.healthy():
        server.start(port=state.port)


def final(job: Job) -> Job | None:
    job.refresh_from_db()
    return job if job.is_final else None


def test_job_started_while_nats_is_down_finishes_once_nats_is_back(
    stack, demo_project, nats_server
):
    project, pipeline = demo_project
    port = nats_server.read_state().port
    nats_server.stop()
    stack.celery("celery", "jobs,ml_results")
    job = create_job(project, pipeline, "NATS down at start", {"limit": 16})
    start_job(job.pk)
    wait_until(lambda: "retry: Retry in" in stack.log("celery"), "Celery to retry the start")
    nats_server.start(port=port)
    stack.worker("worker", job, "--batch", "4")
    wait_until(lambda: final(job), "the job to finish", limit=JOB_LIMIT)
    assert job.status == JobStatus.SUCCESS, job.failure_reason
    stage = JobStage.objects.get(job=job, key=StageKey.PROCESS)
    assert (stage.processed, stage.failed, stage.total) == (16, 0, 16)
