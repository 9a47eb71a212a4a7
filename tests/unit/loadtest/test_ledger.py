import logging

from ami.jobs.logging import JOB_LOGGER_NAME, job_logger
from ami.loadtest.ledger import LINE_ID_KEY, emitted_ids, install, stored_ids


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
