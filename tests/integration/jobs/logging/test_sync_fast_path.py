"""`sync`'s short per-line path keeps its guarantees: the prepared INSERT survives being
deallocated or its connection killed, refuses what psycopg refuses, and a job's remembered
partition key is dropped with the partitions the process knew."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connections

from ami.jobs import log_partitions
from ami.jobs.logging.backends.sync import INSERT, insert_rows, known_keys
from ami.jobs.logging.rows import LogRow
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB


def test_a_deallocated_statement_is_prepared_again_and_the_line_stored(job):
    job.logger.info("first")
    with connections["logs"].connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as DISCARD ALL or a pooler would
    job.logger.info("second")
    assert stored_messages(job.pk) == ["first", "second"]


def test_the_statement_is_prepared_once_per_connection(job):
    job.logger.info("first")
    raw = connections["logs"].connection
    job.logger.info("second")
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %s", ["ami_joblog_insert"]
        )
        assert cursor.fetchone() == (1,)
    assert INSERT.name == b"ami_joblog_insert"


def test_a_nul_in_a_row_is_refused_not_truncated(job):
    """Rows reach the INSERT sanitised (a NUL is stripped); one that was not is refused as
    psycopg refuses it, since a text-format value would end at the NUL."""
    with pytest.raises(psycopg.DataError, match="NUL"):
        insert_rows([LogRow(job.pk, 20, "cut \x00 here")])
    assert stored_messages(job.pk) == []


def test_a_job_key_is_remembered_until_the_known_partitions_change(job):
    job.logger.info("first")
    row = LogRow(job.pk, 20, "x")
    assert known_keys.get([row]) == {job.pk: job.log_partition_key}
    log_partitions.covered.forget()
    assert known_keys.get([row]) is None
    job.logger.info("second")
    assert known_keys.get([row]) == {job.pk: job.log_partition_key}
    assert stored_messages(job.pk) == ["first", "second"]
