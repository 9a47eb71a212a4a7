"""A write whose commit reply is lost is retried, and the retry stores nothing twice: every
row carries its `key`, and every retry skips keys already stored."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from django.db import connections

from ami.jobs.logging.handler import build_backend, flush_job_logs
from ami.jobs.logging.rows import LogRow
from ami.jobs.models import JobLog
from tests.integration.jobs.logging.proxy import CommitReplyDropper
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB


@pytest.fixture
def lossy_logs_db() -> Iterator[CommitReplyDropper]:
    """The `logs` alias (every thread's) goes through a proxy that can lose commit replies."""
    logs = connections.settings["logs"]
    saved = {key: logs[key] for key in ("HOST", "PORT", "OPTIONS")}
    proxy = CommitReplyDropper(logs["HOST"] or "127.0.0.1", int(logs["PORT"]))
    connections["logs"].close()
    logs.update(
        HOST="127.0.0.1",
        PORT=str(proxy.port),
        # The proxy parses the protocol: no TLS or GSS negotiation in front of it.
        OPTIONS={**logs["OPTIONS"], "sslmode": "disable", "gssencmode": "disable"},
    )
    try:
        yield proxy
    finally:
        connections["logs"].close()
        logs.update(saved)
        proxy.close()


def test_a_sync_line_whose_commit_reply_is_lost_is_stored_once(job, lossy_logs_db, use_backend):
    backend = use_backend("sync")
    job.logger.info("warm up")  # the log budget's first chunk reserved: the next write is the line
    lossy_logs_db.arm()
    job.logger.info("committed, reply lost")
    assert lossy_logs_db.cuts == 1
    assert stored_messages(job.pk) == ["warm up", "committed, reply lost"]
    assert backend.reporter.lost_lines == 0


def test_a_multi_row_sync_write_retried_after_a_partial_commit_stores_each_row_once(
    job, lossy_logs_db
):
    backend = build_backend("sync", dual_write=False)
    rows = [LogRow(job.pk, logging.INFO, f"row {i}") for i in range(3)]
    backend.write_rows([LogRow(job.pk, logging.INFO, "warm up")])
    lossy_logs_db.arm(after_writes=2)  # rows 0 and 1 commit, the reply to row 1 is lost
    assert backend.write_guarded(rows)
    assert lossy_logs_db.cuts == 1
    assert stored_messages(job.pk) == ["warm up", "row 0", "row 1", "row 2"]
    backend.close(1)


def test_a_copy_whose_commit_reply_is_lost_is_stored_once(job, lossy_logs_db, use_backend):
    backend = use_backend("buffered", interval=60.0)
    job.logger.info("warm up")
    assert flush_job_logs(10)
    for i in range(3):
        job.logger.info("line %d", i)
    lossy_logs_db.arm()
    assert flush_job_logs(10)
    assert lossy_logs_db.cuts == 1
    assert stored_messages(job.pk) == ["warm up", "line 0", "line 1", "line 2"]
    assert JobLog.objects.filter(job=job).values("key").distinct().count() == 4
    assert backend.reporter.lost_lines == 0
