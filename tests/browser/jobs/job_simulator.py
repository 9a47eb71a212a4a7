"""A running job, simulated through real database connections in another process.

Advances the `process` stage one image at a time and writes a log line per image, the way
the result workers do; importable without Django so `multiprocessing` can spawn it.
"""

from __future__ import annotations

import time

import psycopg

ADVANCE = """
UPDATE jobs_jobstage SET processed = processed + 1, detections = detections + 2,
       classifications = classifications + 2, status = 'STARTED',
       progress = (processed + failed + 1)::float / total, updated_at = now()
WHERE job_id = %s AND key = 'process'
"""
FAIL = """
UPDATE jobs_jobstage SET failed = failed + 1, status = 'STARTED',
       progress = (processed + failed + 1)::float / total, updated_at = now()
WHERE job_id = %s AND key = 'process'
"""
LOG = """
INSERT INTO jobs_joblog (job_id, level, message, context, job_partition_key)
SELECT id, %s, %s, %s, log_partition_key FROM jobs_job WHERE id = %s
"""
FINISH_STAGE = "UPDATE jobs_jobstage SET status = 'SUCCESS' WHERE job_id = %s AND key = %s"
# The product's rule (ami.jobs.states.final_status_for): failed images make the job end
# COMPLETED_WITH_ERRORS, not SUCCESS.
FINISH = """
UPDATE jobs_job SET finished_at = now(), status = (
    SELECT CASE WHEN failed = 0 THEN 'SUCCESS' WHEN processed > 0 THEN 'COMPLETED_WITH_ERRORS'
                ELSE 'FAILURE' END
    FROM jobs_jobstage WHERE job_id = %(job)s AND key = 'process')
WHERE id = %(job)s
"""


def run_job(url: str, job_id: int, images: int, pause: float, go, done_log: str) -> None:
    """Wait for `go`, then process `images` images, `pause` seconds apart (every tenth one
    fails), and finish."""
    go.wait(timeout=60)
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(images):
            level = 40 if i % 10 == 9 else 20
            conn.execute(ADVANCE if level == 20 else FAIL, [job_id])
            message = f"Saved image {i}: 2 detections" if level == 20 else f"image {i} failed"
            conn.execute(LOG, [level, message, f'{{"image": {i}}}', job_id])
            time.sleep(pause)  # the scenario: a job the page watches advance
        for stage in ("process", "results"):
            conn.execute(FINISH_STAGE, [job_id, stage])
        conn.execute(FINISH, {"job": job_id})
        conn.execute(LOG, [20, done_log, "{}", job_id])
