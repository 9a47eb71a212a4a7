"""The log benchmark's writer processes on the product backends, under a row-updating process.

8 OS processes log into one job while another process updates that job's row in a loop. The
upstream's emit, which loses lines under the same load, is shown by
tests/integration/lab/upstream/test_seed_emit.py, step by step.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from ami.jobs.models import JobLog
from ami_lab.bench.logs.writers import ProgressUpdater, run_writers
from tests.support.logs import LOGS_DB

pytestmark = [LOGS_DB, pytest.mark.slow, pytest.mark.usefixtures("fresh_log_backend")]

PROCESSES, LINES = 8, 2000


def write_under_progress_updates(job, mode, lines, env, tmp_path) -> int:
    """Run the writers with the updater going; return how many row updates it made."""
    updater = ProgressUpdater(job.pk, tmp_path / "stop", env)
    try:
        run_writers(mode, job.pk, PROCESSES, lines, env)
    finally:
        updates = updater.stop()
    return updates


@pytest.mark.parametrize("mode", ["sync", "buffered", "redis"])
def test_no_line_lost_or_duplicated_and_each_process_in_order(mode, job, subprocess_env, tmp_path):
    updates = write_under_progress_updates(job, mode, LINES, subprocess_env, tmp_path)
    rows = (
        JobLog.objects.filter(job=job).order_by("id").values_list("context__writer", "context__seq")
    )
    rows = list(rows)
    assert updates > 0  # the row really was being locked and updated meanwhile
    assert len(rows) == PROCESSES * LINES
    assert max(Counter(rows).values()) == 1
    by_writer: dict[int, list[int]] = defaultdict(list)
    for writer, seq in rows:
        by_writer[writer].append(seq)
    assert by_writer == {writer: list(range(LINES)) for writer in range(PROCESSES)}
