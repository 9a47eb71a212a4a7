"""JobLog partition ranges: periods, names, bounds read back from the catalogue, and ranges
cut short where a partition of another period already stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ami.jobs.log_partitions import (
    MAX,
    MIN,
    Partition,
    _free_range,
    partition_name,
    partitions_from_rows,
    period_bounds,
)

DAY = timedelta(days=1)
WEDNESDAY_NOON = datetime(2031, 3, 5, 12, 30, tzinfo=UTC)
MONDAY = datetime(2031, 3, 3, tzinfo=UTC)


def test_a_day_and_a_week_hold_their_key():
    assert period_bounds(WEDNESDAY_NOON, "day") == (MONDAY + 2 * DAY, MONDAY + 3 * DAY)
    assert period_bounds(WEDNESDAY_NOON, "week") == (MONDAY, MONDAY + 7 * DAY)


def test_a_key_in_another_time_zone_falls_in_its_utc_day():
    evening_in_new_york = datetime(2031, 3, 5, 21, tzinfo=timezone(timedelta(hours=-5)))
    assert period_bounds(evening_in_new_york, "day")[0] == MONDAY + 3 * DAY  # 02:00 UTC, Thu


def test_bounds_are_read_back_from_the_catalogue_text():
    rows = [
        ("jobs_joblog_p20310305", "FOR VALUES FROM ('2031-03-05 00:00:00+00') TO "
         "('2031-03-06 00:00:00+00')", False),
        ("jobs_joblog_legacy", "FOR VALUES FROM (MINVALUE) TO ('1970-01-02 00:00:00+00')", False),
        ("jobs_joblog_tail", "FOR VALUES FROM ('2031-03-06 00:00:00+00') TO (MAXVALUE)", True),
    ]  # fmt: skip
    legacy, day, tail = partitions_from_rows(rows)
    assert (legacy.start, legacy.end) == (MIN, datetime(1970, 1, 2, tzinfo=UTC))
    assert (day.start, day.end) == (MONDAY + 2 * DAY, MONDAY + 3 * DAY)
    assert tail.end == MAX and tail.detach_pending
    assert day.covers(WEDNESDAY_NOON) and not day.covers(MONDAY + 3 * DAY)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], (MONDAY, MONDAY + 7 * DAY)),
        ([(MONDAY + 4 * DAY, MONDAY + 5 * DAY)], (MONDAY, MONDAY + 4 * DAY)),
        ([(MONDAY - DAY, MONDAY + DAY)], (MONDAY + DAY, MONDAY + 7 * DAY)),
        (
            [(MONDAY, MONDAY + 2 * DAY), (MONDAY + 3 * DAY, MONDAY + 4 * DAY)],
            (MONDAY + 2 * DAY, MONDAY + 3 * DAY),
        ),
    ],
)
def test_a_new_range_never_overlaps_what_exists(existing, expected):
    parts = [Partition(start, end, f"p{i}") for i, (start, end) in enumerate(existing)]
    assert _free_range(WEDNESDAY_NOON, "week", parts) == expected


def test_names_say_where_the_range_starts():
    assert partition_name(MONDAY) == "jobs_joblog_p20310303"
    assert partition_name(MONDAY + timedelta(hours=6)) == "jobs_joblog_p20310303_060000"
