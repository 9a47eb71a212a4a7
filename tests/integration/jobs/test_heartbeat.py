"""touch_heartbeat is best effort: it never waits behind someone holding the job row."""

from __future__ import annotations

import time

import psycopg
import pytest

from ami.jobs.locking import touch_heartbeat
from ami.jobs.models import Job


@pytest.mark.django_db(transaction=True)
def test_heartbeat_skips_a_job_row_locked_elsewhere(job, test_database_url):
    with psycopg.connect(test_database_url) as holder:
        holder.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", (job.pk,))
        began = time.monotonic()
        touch_heartbeat(job.pk)
        assert time.monotonic() - began < 1.0
        assert Job.objects.get(pk=job.pk).last_heartbeat_at is None  # skipped, not waited
    touch_heartbeat(job.pk)
    beat = Job.objects.get(pk=job.pk).last_heartbeat_at
    assert beat is not None
    touch_heartbeat(job.pk, min_interval=60)  # recent enough: left alone
    assert Job.objects.get(pk=job.pk).last_heartbeat_at == beat
