"""Chaos, CI-sized: a job on a 3-node NATS cluster with two Celery worker groups standing
for two hosts. Mid-job, the node leading the job's consumer (the one that serves its pulls
and acks) is SIGKILLed, and so is host A's whole worker group while it saves a result. The
job must end SUCCESS exactly once, with exact counts, no image failed, and no job log line
lost or duplicated.

"While it saves a result" is made certain, not left to timing: the test holds the job's
image task rows locked until a result transaction of host A waits on them, then strikes.

Real processes throughout: the web server, `celery` workers (the load test's app: every job
log line is recorded in a ledger before it is written), `ami worker` processing services,
PostgreSQL, Redis, and the cluster. The verdict is the load test's (`ami_lab.loadtest`). The
broker's visibility timeout is shortened, so host A's unacknowledged result tasks come back
to host B within seconds (as in test_lost_start.py).
"""

from __future__ import annotations

import logging
import time

import pytest

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import JobLog, JobStage
from ami.jobs.states import JobStatus, StageKey
from ami.ml.orchestration import nats
from ami_lab.demo.setup import ensure_images, ensure_pipeline, processing_key
from ami_lab.jobs import wait_for_job_end
from ami_lab.loadtest import verdict
from ami_lab.loadtest.config import LoadConfig
from ami_lab.loadtest.faults import FaultPlan
from ami_lab.loadtest.ledger import LEDGER_ENV, LINES_PER_RESULT_ENV, task_records
from ami_lab.loadtest.lock_sampler import LockWaitStats
from ami_lab.loadtest.runner import measure, wait_for_celery_ready
from ami_lab.processes import celery_worker_command, free_port, web_command
from ami_lab.stack import ProcessingWorkerOptions, start_processing_workers, wait_for_port
from ami_lab.supervisor import Supervisor
from ami_lab.upstream import backend_setting
from tests.support.chaos import GroupKill, NodeKill
from tests.support.locks import blocked_pids, rows_locked
from tests.support.nats_cluster import REPLICAS, consumer_leader, stream_leader
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

logger = logging.getLogger(__name__)

IMAGES = 48
MODE = "sync"  # a log mode that guarantees its lines
CELERY_APP = "ami_lab.loadtest.worker_app"
STRIKE_AFTER = 8  # images processed before the strike: mid-job, host A at work
JOB_LIMIT = 60.0  # seconds from the strike to the job's end
READY_LIMIT = 60.0  # seconds for the web server and the Celery workers to start
HOSTS = ("celery-host-a", "celery-host-b")


@pytest.fixture
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def cluster_env(subprocess_env, settings, media_root, ledger_dir) -> dict[str, str]:
    """Every process of the stack: the cluster, R3 streams, the ledger, short redelivery."""
    return {
        **subprocess_env,
        "NATS_URL": settings.NATS_URL,
        "AMI_NATS_REPLICAS": str(REPLICAS),
        "AMI_NATS_NAMESPACE": settings.NATS_NAMESPACE,
        "AMI_NATS_ACK_WAIT": "15",  # a task whose ack is lost comes back (seconds)
        "AMI_BROKER_VISIBILITY_TIMEOUT": "6",  # host A's unacked tasks come back (seconds)
        "AMI_BROKER_RESTORE_INTERVAL": "1",
        "AMI_MEDIA_ROOT": str(media_root),
        "PYTHONUNBUFFERED": "1",
        "JOB_LOG_BACKEND": backend_setting(MODE),
        "JOB_LOG_DUAL_WRITE": "false",
        LEDGER_ENV: str(ledger_dir),
        LINES_PER_RESULT_ENV: "1",
    }


def processed(job_id: int) -> int:
    return JobStage.objects.get(job_id=job_id, key=StageKey.PROCESS).processed


def waiting_backends(blocker, app_name: str) -> list[int]:
    """Backends of `app_name`'s processes that wait on a lock `blocker` holds."""
    pids = blocked_pids(blocker)
    rows = blocker.execute(
        "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s) AND application_name = %s",
        [pids, app_name],
    ).fetchall()
    return [row[0] for row in rows]


def test_job_survives_losing_its_nats_leader_and_a_worker_host(
    on_cluster, settings, subprocess_env, media_root, broker, test_database_url, tmp_path
):
    project, pipeline = ensure_images(IMAGES), ensure_pipeline()
    key = processing_key("chaos workers")
    ledger_dir = tmp_path / "ledger"
    ledger_dir.mkdir()
    env = cluster_env(subprocess_env, settings, media_root, ledger_dir)
    plan = FaultPlan([NodeKill(), GroupKill()])
    node_kill, group_kill = plan.faults
    port = free_port()
    with Supervisor(tmp_path / "logs", env) as supervisor:
        supervisor.start("web", web_command(port))
        hosts = {
            name: supervisor.start(
                name,
                celery_worker_command("jobs,ml_results", 2, name, app=CELERY_APP),
                env={"AMI_APP_NAME": name},  # its database connections say which host
            )
            for name in HOSTS
        }
        wait_for_port(supervisor, port, timeout=READY_LIMIT)
        wait_for_celery_ready(supervisor, READY_LIMIT)

        job = create_job(project, pipeline, "chaos", {"limit": IMAGES})
        started = time.monotonic()
        assert start_job(job.pk)
        start_processing_workers(
            supervisor,
            port,
            2,
            ProcessingWorkerOptions(key, job.pk, concurrency=1, batch=4, inference_delay=0.4),
        )
        host_a = hosts[HOSTS[0]]
        wait_until(lambda: processed(job.pk) >= STRIKE_AFTER, "the job to be under way")
        stream = nats.stream_name(job.pk)
        leader = consumer_leader(on_cluster, stream, nats.consumer_name(job.pk))
        leads_stream = stream_leader(on_cluster, stream).name == leader.name
        with rows_locked(test_database_url, "jobs_imagetask", "job_id", job.pk) as blocker:
            orphans = wait_until(
                lambda: waiting_backends(blocker, HOSTS[0]), "host A to save a result"
            )
            node_kill.strike_node(leader)
            group_kill.strike_group(host_a)
            for pid in orphans:  # its server process would notice the dead client late
                blocker.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            struck_at, done_at_strike = time.monotonic(), processed(job.pk)
        assert done_at_strike < IMAGES, "the job ended before the strike"

        progress = wait_for_job_end(job.pk, timeout=JOB_LIMIT)
        recovered = time.monotonic() - struck_at
        supervisor.stop()  # SIGTERM: warm shutdowns write every buffered line
    wall = time.monotonic() - started
    logger.warning(
        "chaos: killed %s (consumer leader%s) and host A at %d/%d images; job %s %.1f s later",
        leader.name, ", stream leader" if leads_stream else "", done_at_strike, IMAGES,
        progress.status, recovered,
    )  # fmt: skip

    job.refresh_from_db()
    result = measure(
        MODE, job, LoadConfig(images=IMAGES), tmp_path, ledger_dir, plan, LockWaitStats(), wall
    )
    assert verdict.problems(result) == []
    assert job.status == JobStatus.SUCCESS
    assert (result.images_processed, result.images_failed) == (IMAGES, 0)
    assert result.lines_lost == result.lines_lost_at_sigkill and result.lines_duplicated == 0
    final_lines = JobLog.objects.filter(job_id=job.pk, message__startswith="Job finished")
    assert final_lines.count() == 1  # SUCCESS exactly once
    assert task_records(ledger_dir)  # the workers ran through the ledgered app
