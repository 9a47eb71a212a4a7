"""Cursor arithmetic, property-based, on the real database: every row once, in order.

Rows get explicit `txid`s in any order relative to their ids, so `(txid, id)` order differs
from id order; pages go through the same parameter parsing as a request, cursors as strings.
"""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ami.jobs.api.cursor import MAX_BIGINT, START, Cursor
from ami.jobs.api.log_query import BadLogQuery, fetch_page, parse_cursor, parse_page_request
from ami.jobs.lifecycle import create_job

pytestmark = pytest.mark.django_db(transaction=True)
HORIZON = 10**6  # above every txid these tests write
LEVELS = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
_INSERT = (
    "INSERT INTO jobs_joblog (job_id, txid, level, message, context, job_partition_key) "
    "SELECT id, %s, %s, 'm', '{}', log_partition_key FROM jobs_job WHERE id = %s "
    "RETURNING txid, id"
)

rows_strategy = st.lists(
    st.tuples(st.integers(min_value=0, max_value=12), st.sampled_from(LEVELS)),
    max_size=40,
)


def insert_rows(job_id: int, rows: list[tuple[int, int]]) -> list[tuple[Cursor, int]]:
    """Insert `(txid, level)` rows in the given order; return (position, level) each."""
    with connection.cursor() as cursor:
        written = []
        for txid, level in rows:
            cursor.execute(_INSERT, [txid, level, job_id])
            written.append((Cursor(*cursor.fetchone()), level))
    return written


def walk(job_id: int, params: dict[str, str], forward: bool) -> list[Cursor]:
    """Follow the cursors of successive pages to the end; the positions served, in order."""
    seen: list[Cursor] = []
    query = {**params, "after": "0.0"} if forward else dict(params)
    for _ in range(200):
        page = fetch_page(job_id, parse_page_request(query), HORIZON)
        seen += [Cursor.parse(row["cursor"]) for row in page.rows]
        if forward:
            if not page.rows:
                return seen
            query = {**params, "after": str(page.newer_cursor)}
        else:
            if page.older_cursor is None:
                return seen
            query = {**params, "before": str(page.older_cursor)}
    raise AssertionError("paging did not finish")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=rows_strategy,
    limit=st.integers(min_value=1, max_value=7),
    min_level=st.sampled_from([None, *LEVELS]),
    window=st.sampled_from([1, 2, 5000]),
)
def test_paging_both_ways_serves_every_row_once_in_order(
    project, pipeline, rows, limit, min_level, window
):
    job = create_job(project, pipeline, "cursor walk", {})
    written = insert_rows(job.pk, rows)
    expected = sorted(c for c, level in written if min_level is None or level >= min_level)
    params = {"limit": str(limit)}
    if min_level is not None:
        params["level"] = str(min_level)
    with mock.patch("ami.jobs.api.log_query.FILTER_WINDOW", window):
        assert walk(job.pk, params, forward=True) == expected
        assert walk(job.pk, params, forward=False) == expected[::-1]


@given(txid=st.integers(0, MAX_BIGINT), line_id=st.integers(0, MAX_BIGINT))
def test_cursor_strings_round_trip(txid, line_id):
    cursor = Cursor(txid, line_id)
    assert Cursor.parse(str(cursor)) == cursor
    assert parse_cursor({"after": str(cursor)}, "after") == cursor
    assert cursor < cursor.successor()
    assert cursor.predecessor() < cursor or cursor == START
    assert cursor.successor().predecessor() == cursor


@given(raw=st.text(max_size=30))
def test_any_other_string_is_a_bad_cursor_naming_the_parameter(raw):
    try:
        cursor = parse_cursor({"before": raw}, "before")
    except BadLogQuery as error:
        assert set(error.errors) == {"before"}
    else:
        if cursor is None:
            assert raw.strip() == ""
        else:
            txid, _, line_id = raw.strip().partition(".")
            assert (cursor.txid, cursor.id) == (int(txid), int(line_id))


@pytest.mark.parametrize(
    "raw",
    ["12", "-1.2", "1.-2", "1.2.3", "1,2", "².1", "١.٢", "1.2\x00", "9" * 20 + ".1", "0x1.2"],
)
def test_malformed_cursors_are_a_400(member_client, staged_job, raw):
    for name in ("after", "before"):
        response = member_client.get(f"/api/jobs/{staged_job.pk}/logs", {name: raw})
        assert response.status_code == 400, (name, raw)
        assert name in response.json()
