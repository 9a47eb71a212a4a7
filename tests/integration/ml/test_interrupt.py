"""A soft time limit inside a blocked query frees the task's locks at once.

The interrupt is the real one: billiard's SIGUSR1 handler (what a Celery pool process runs
at the soft time limit), fired by a real signal while the query waits for a row lock held by
another connection.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest
from billiard.pool import soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, transaction

from ami.jobs.models import Job
from ami.ml.orchestration.interrupt import abandon_connection_on_interrupt

pytestmark = pytest.mark.django_db(transaction=True)

SIGNAL_AFTER = 0.5  # seconds into the blocked query
FREED_WITHIN = 2.0  # seconds; the old code held the locks until the blocker let go


def locks_of(blocker: psycopg.Connection, pid: int) -> int:
    row = blocker.execute("SELECT count(*) FROM pg_locks WHERE pid = %s", [pid]).fetchone()
    return row[0]


def wait_until_no_locks(blocker: psycopg.Connection, pid: int, deadline: float) -> int:
    while (held := locks_of(blocker, pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return held


@pytest.fixture
def soft_time_limit_signal():
    previous = signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
    yield lambda: os.kill(os.getpid(), signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, previous)


def test_soft_time_limit_in_a_lock_wait_releases_the_locks_at_once(
    project, pipeline, test_database_url, soft_time_limit_signal
):
    mine = Job.objects.create(project=project, pipeline=pipeline, name="mine")
    theirs = Job.objects.create(project=project, pipeline=pipeline, name="held elsewhere")
    with psycopg.connect(test_database_url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE", [theirs.pk])
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid
        timer = threading.Timer(SIGNAL_AFTER, soft_time_limit_signal)
        timer.start()
        with (
            pytest.raises(SoftTimeLimitExceeded),
            transaction.atomic(),
            abandon_connection_on_interrupt(),
        ):
            Job.objects.filter(pk=mine.pk).update(name="locked by me")
            Job.objects.filter(pk=theirs.pk).update(name="waits for the blocker")
        timer.join()
        held = wait_until_no_locks(blocker, pid, time.monotonic() + FREED_WITHIN)
        blocker.execute("ROLLBACK")
    assert held == 0
    assert Job.objects.get(pk=mine.pk).name == "mine"  # the interrupted work was rolled back
