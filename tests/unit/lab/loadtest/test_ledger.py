import logging

from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami_lab.loadtest.ledger import (
    HOSTILE_KEY,
    HOSTILE_TEXTS,
    LINE_ID_KEY,
    emitted_ids,
    emitted_lines,
    install,
    stored_ids,
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_each_line_gets_a_unique_id_recorded_before_the_handler(tmp_path):
    ledger = install(tmp_path)
    capture = Capture()
    logger = logging.getLogger(JOB_LOGGER_NAME)
    logger.addHandler(capture)
    try:
        for i in range(50):
            job_logger(7).info("line %d", i, extra={"image_id": i})
    finally:
        logger.removeHandler(capture)
        logger.removeFilter(ledger)
    ids = emitted_ids(tmp_path)
    tagged = [record.job_context[LINE_ID_KEY] for record in capture.records]
    assert len(ids) == 50 and set(ids) == set(tagged)
    assert all(count == 1 for count in ids.values())
    assert capture.records[3].job_context["image_id"] == 3
    assert stored_ids(record.getMessage() for record in capture.records) == ids
    assert capture.records[3].getMessage().startswith("line 3 lt=")


def test_hostile_lines_carry_hostile_text_and_are_marked_in_the_ledger(tmp_path):
    ledger = install(tmp_path, hostile_every=3)
    capture = Capture()
    logger = logging.getLogger(JOB_LOGGER_NAME)
    logger.addHandler(capture)
    try:
        for i in range(30):
            job_logger(7).info("line %d", i)
    finally:
        logger.removeHandler(capture)
        logger.removeFilter(ledger)
    hostile = [r for r in capture.records if HOSTILE_KEY in r.job_context]
    assert len(hostile) == 10
    assert {r.job_context[HOSTILE_KEY] for r in hostile} == set(HOSTILE_TEXTS)
    assert all(r.job_context[HOSTILE_KEY] in r.getMessage() for r in hostile)
    marked = {line.line_id for line in emitted_lines(tmp_path) if line.hostile}
    assert marked == {r.job_context[LINE_ID_KEY] for r in hostile}
    assert stored_ids(r.getMessage() for r in capture.records) == emitted_ids(tmp_path)
