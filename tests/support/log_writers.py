"""Log writers for concurrency tests: plain psycopg connections in their own processes.

Importable without Django, so `multiprocessing` can spawn them.
"""

from __future__ import annotations

import random
import time

import psycopg

# (job id, message): a line with its job's partition key, as the product's writers store it.
INSERT = (
    "INSERT INTO jobs_joblog (job_id, level, message, context, job_partition_key) "
    "SELECT job.id, 20, line.message, '{}', job.log_partition_key "
    "FROM (VALUES (%s::bigint, %s::text)) AS line (job_id, message) "
    "JOIN jobs_job AS job ON job.id = line.job_id"
)


def write_mixed_transactions(url: str, job_id: int, writer: int, transactions: int) -> None:
    """Autocommit lines, multi-line transactions held open a while, and rollbacks."""
    rng = random.Random(writer)
    with psycopg.connect(url) as conn:
        for t in range(transactions):
            shape = rng.random()
            if shape < 0.4:
                conn.autocommit = True
                conn.execute(INSERT, [job_id, f"w{writer} t{t} single"])
                continue
            conn.autocommit = False
            for n in range(rng.randint(1, 4)):
                conn.execute(INSERT, [job_id, f"w{writer} t{t} n{n}"])
                time.sleep(rng.uniform(0, 0.02))  # the scenario: writers at uneven paces
            if shape < 0.9:
                conn.commit()
            else:
                conn.rollback()
