"""A `run_job` lost with its whole worker (its host died) runs again on another worker,
after the broker's visibility timeout, and the job starts: real Celery workers, Redis,
PostgreSQL and NATS. The timeouts are shortened here; `jobs.E006` checks that the real
ones bring a lost task back before the stale-job check would close its job."""

from __future__ import annotations

import pytest

from ami.jobs.lifecycle import create_job, start_job
from ami.jobs.models import Job
from ami.jobs.states import JobStatus
from ami.ml.orchestration import dispatch, nats
from ami_lab.processes import celery_worker_command
from ami_lab.supervisor import Supervisor
from tests.support.locks import blocked_pids, rows_locked
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

VISIBILITY_TIMEOUT = 3  # seconds a task may stay unacknowledged before it is restored


def test_a_start_lost_with_its_worker_runs_on_another(
    project, pipeline, images, broker, subprocess_env, test_database_url, tmp_path
):
    env = {
        **subprocess_env,
        "DJANGO_SETTINGS_MODULE": "ami.settings",
        "AMI_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "AMI_BROKER_RESTORE_INTERVAL": "1",
    }
    job = create_job(project, pipeline, "lost start")
    assert start_job(job.pk)  # PENDING, and run_job waits in the broker
    with Supervisor(tmp_path / "logs", env) as supervisor:
        with rows_locked(test_database_url, "jobs_job", "id", job.pk) as blocker:
            supervisor.start("host-a", celery_worker_command("jobs", 1, "host-a"))
            wait_until(lambda: blocked_pids(blocker), "run_job to start on host A")
            orphaned = blocked_pids(blocker)
            supervisor.stop(["host-a"], grace=0)  # the whole host is gone: SIGKILL
            for pid in orphaned:  # its server process would notice the dead client late
                blocker.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING

        supervisor.start("host-b", celery_worker_command("jobs", 1, "host-b"))
        wait_until(lambda: dispatch.is_published(job.pk), "host B to run the lost start")

    assert Job.objects.get(pk=job.pk).status == JobStatus.STARTED
    assert nats.consumer_state(job.pk).pending == len(images)
    nats.delete_queue(job.pk)
