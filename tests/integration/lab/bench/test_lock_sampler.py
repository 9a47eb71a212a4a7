"""The convoy sampler sees a real row-lock wait on a stage row, and measures it.

One connection holds a stage row lock; a second tries to update that row and waits; the
lock is released only once the sampler has seen the wait last at least HOLD_MS. If the
sampler could not see waits (or misattributed them), this test would time out or fail.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from ami.jobs.models import JobStage
from ami.jobs.states import StageKey
from ami_lab.bench.lock_sampler import LockSampler, percentile, wait_summary
from ami_lab.processes import poll_until

HOLD_MS = 300


@pytest.mark.django_db(transaction=True)
def test_sampler_reports_one_episode_on_the_stage_row_for_the_hold_time(job, test_database_url):
    stage, _ = JobStage.objects.get_or_create(job=job, key=StageKey.PROCESS)
    update = "UPDATE jobs_jobstage SET processed = processed + 1 WHERE id = %s"
    with (
        psycopg.connect(test_database_url) as holder,
        psycopg.connect(test_database_url, autocommit=True) as waiter,
        LockSampler({"conninfo": test_database_url}, interval=0.003) as sampler,
    ):
        holder.execute("SELECT id FROM jobs_jobstage WHERE id = %s FOR UPDATE", [stage.pk])
        waiter_pid = waiter.info.backend_pid
        blocked = threading.Thread(target=waiter.execute, args=(update, [stage.pk]))
        blocked.start()
        try:

            def waited_long_enough() -> bool:
                seen = [e for e in sampler.episodes() if e.pid == waiter_pid]
                return bool(seen) and seen[0].waited_ms >= HOLD_MS

            poll_until(waited_long_enough, timeout=30, what="the sampler to see the wait")
        finally:
            holder.commit()
            blocked.join(timeout=30)
        episodes = sampler.stop()
    on_stage = [e for e in episodes if "jobs_jobstage" in e.relations]
    assert len(on_stage) == 1
    assert on_stage[0].pid == waiter_pid and on_stage[0].on_job_rows
    assert on_stage[0].waited_ms >= HOLD_MS
    assert wait_summary(on_stage)["p99_ms"] >= HOLD_MS
    assert JobStage.objects.get(pk=stage.pk).processed == 1  # the waiter went through


def test_percentile_is_nearest_rank():
    assert percentile([], 0.99) == 0.0
    assert percentile([5.0], 0.5) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
