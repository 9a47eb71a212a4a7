"""`sync`'s short per-line path keeps its guarantees: a job's remembered partition key is
dropped with the partitions the process knew, and a line is stored after it."""

from __future__ import annotations

from ami.jobs import log_partitions
from ami.jobs.logging.backends.sync import known_keys
from ami.jobs.logging.rows import LogRow
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB


def test_a_job_key_is_remembered_until_the_known_partitions_change(job):
    job.logger.info("first")
    row = LogRow(job.pk, 20, "x")
    assert known_keys.get([row]) == {job.pk: job.log_partition_key}
    log_partitions.covered.forget()
    assert known_keys.get([row]) is None
    job.logger.info("second")
    assert known_keys.get([row]) == {job.pk: job.log_partition_key}
    assert stored_messages(job.pk) == ["first", "second"]
