"""A reader following `after` cursors never skips a line that committed late.

Ids are drawn when a row is inserted, not when it commits; these tests hold real writer
transactions open on their own connections and processes.
"""

from __future__ import annotations

import multiprocessing
import time

import psycopg
import pytest

from ami.jobs.api.horizon import safe_horizon
from ami.jobs.models import JobLog
from tests.integration.api.log_writers import INSERT, write_mixed_transactions

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def follow(client, job_id: int, cursor: int) -> tuple[list[int], int]:
    response = client.get(f"/api/jobs/{job_id}/logs?after={cursor}&limit=1000")
    assert response.status_code == 200, response.content
    body = response.json()
    return [row["id"] for row in body["results"]], body["newer_cursor"]


def test_a_line_held_in_an_open_transaction_is_not_skipped(
    member_client, staged_job, test_database_url
):
    slow = psycopg.connect(test_database_url)  # a transaction stays open until commit()
    try:
        late_id = slow.execute(INSERT + " RETURNING id", [staged_job.pk, "late"]).fetchone()[0]
        with psycopg.connect(test_database_url, autocommit=True) as fast:
            fast_ids = [
                fast.execute(INSERT + " RETURNING id", [staged_job.pk, f"fast {i}"]).fetchone()[0]
                for i in range(5)
            ]
        assert min(fast_ids) > late_id
        # The hazard is real: a naive `id > cursor` read already sees the later ids.
        naive = JobLog.objects.filter(job=staged_job, id__gt=0).values_list("id", flat=True)
        assert sorted(naive) == fast_ids

        ids, cursor = follow(member_client, staged_job.pk, 0)
        assert ids == []
        assert cursor < late_id
        newest = member_client.get(f"/api/jobs/{staged_job.pk}/logs").json()
        assert newest["results"] == []
        assert newest["newer_cursor"] < late_id
        slow.commit()
    finally:
        slow.close()
    ids, cursor = follow(member_client, staged_job.pk, cursor)
    assert ids == [late_id, *fast_ids]
    assert cursor >= fast_ids[-1]


def test_an_idle_transaction_without_writes_does_not_hold_the_horizon(
    member_client, staged_job, test_database_url
):
    with psycopg.connect(test_database_url) as idle:
        idle.execute("SELECT 1")  # open, read-only, idle in transaction
        with psycopg.connect(test_database_url, autocommit=True) as writer:
            written = writer.execute(INSERT + " RETURNING id", [staged_job.pk, "x"]).fetchone()[0]
        assert follow(member_client, staged_job.pk, 0)[0] == [written]
        idle.rollback()


def test_concurrent_writers_and_a_following_reader_agree_exactly(
    member_client, staged_job, test_database_url
):
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(
            target=write_mixed_transactions, args=(test_database_url, staged_job.pk, w, 120)
        )
        for w in range(4)
    ]
    for process in writers:
        process.start()
    seen: list[int] = []
    cursor = 0
    deadline = time.monotonic() + 120
    while any(p.is_alive() for p in writers) and time.monotonic() < deadline:
        ids, cursor = follow(member_client, staged_job.pk, cursor)
        seen += ids
        time.sleep(0.005)
    for process in writers:
        process.join(timeout=30)
        assert process.exitcode == 0
    final = safe_horizon()
    while cursor < final:
        ids, cursor = follow(member_client, staged_job.pk, cursor)
        seen += ids
    committed = list(
        JobLog.objects.filter(job=staged_job).order_by("id").values_list("id", flat=True)
    )
    assert len(committed) > 200
    assert seen == committed  # every committed line, once, in id order
