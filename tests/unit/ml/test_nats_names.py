"""What the task queue reads out of names: a `NATS_URL`'s servers, an ack subject's stream
and consumer (asked whether they still exist when an ack goes unanswered)."""

from __future__ import annotations

import pytest

from ami.ml.orchestration.nats import _ack_target, server_urls


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        ("nats://a:4222", ["nats://a:4222"]),
        ("nats://a:4222,nats://b:4222", ["nats://a:4222", "nats://b:4222"]),
        (" nats://a:4222 , nats://b:4222 ,", ["nats://a:4222", "nats://b:4222"]),
    ],
)
def test_server_urls(value, servers):
    assert server_urls(value) == servers


@pytest.mark.parametrize(
    ("subject", "target"),
    [
        (
            "$JS.ACK.db_job_7.job_7_workers.1.5.5.1796017380197099819.0",
            ("db_job_7", "job_7_workers"),
        ),
        (
            "$JS.ACK.hub.ACCHASH.db_job_7.job_7_workers.1.5.5.1796017380197099819.0.r4nd",
            ("db_job_7", "job_7_workers"),
        ),
        ("$JS.ACK.too.short", None),
        ("_INBOX.abc", None),
    ],
)
def test_ack_target(subject, target):
    assert _ack_target(subject) == target
