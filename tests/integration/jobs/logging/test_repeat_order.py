"""A "last message repeated N times" line is stored before the job's next, different line,
even when the timer thread that writes the count is slower than the logging thread."""

from __future__ import annotations

import logging
import threading

from ami.jobs.logging.backends.sync import SyncBackend
from ami.jobs.logging.rows import LogRow
from tests.support.logs import LOGS_DB, stored_messages

pytestmark = LOGS_DB


class SlowCountSync(SyncBackend):
    """A sync backend whose write of a repeat count waits until the test lets it go."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count_writing = threading.Event()
        self.let_count_go = threading.Event()

    def write_rows(self, rows: list[LogRow]) -> None:
        if any("repeated" in row.context for row in rows):
            self.count_writing.set()
            self.let_count_go.wait(10)
        super().write_rows(rows)


def start_thread(backend: SyncBackend, call, *args) -> threading.Thread:
    """Run `call(*args)` on a thread that closes its log connection when done."""

    def run() -> None:
        try:
            call(*args)
        finally:
            backend.release_thread_resources()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_repeat_count_written_by_the_timer_is_stored_before_the_next_line(job):
    backend = SlowCountSync(repeat_window=0.05)
    for _ in range(3):
        backend.emit(job.pk, logging.INFO, "same", {})
    assert backend.count_writing.wait(10)  # the timer thread took the count and is writing it
    next_line = start_thread(backend, backend.emit, job.pk, logging.INFO, "different", {})
    next_line.join(0.5)  # long enough, on the old code, to store "different" first
    backend.let_count_go.set()
    next_line.join(10)
    assert backend.flush(10)
    backend.close(1)
    assert stored_messages(job.pk) == ["same", "last message repeated 2 times", "different"]


def test_a_repeat_count_flushed_is_stored_before_the_next_line(job):
    backend = SlowCountSync(repeat_window=60.0)
    for _ in range(3):
        backend.emit(job.pk, logging.INFO, "same", {})
    flusher = start_thread(backend, backend.flush, 10)
    assert backend.count_writing.wait(10)
    next_line = start_thread(backend, backend.emit, job.pk, logging.INFO, "different", {})
    next_line.join(0.5)
    backend.let_count_go.set()
    next_line.join(10)
    flusher.join(10)
    backend.close(1)
    assert stored_messages(job.pk) == ["same", "last message repeated 2 times", "different"]
