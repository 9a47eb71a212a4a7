"""Each injected fault does to real servers and processes what it claims."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import nats
import psutil
import psycopg
import pytest

from ami_lab.loadtest.faults import (
    ConnectionTerminator,
    IdleInTransactionTimeout,
    JobLockHolder,
    NatsRestarter,
    WorkerKiller,
)
from ami_lab.servers import SERVERS
from tests.support.polling import wait_until


def test_terminator_kills_only_matching_connections(test_database_url):
    victim = psycopg.connect(test_database_url, application_name="ami-lt-victim")
    bystander = psycopg.connect(test_database_url, application_name="other")
    ConnectionTerminator(test_database_url, interval=1, app_prefix="ami-lt").strike()
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    assert bystander.execute("SELECT 1").fetchone() == (1,)
    bystander.close()


def test_idle_in_transaction_timeout_applies_to_new_connections_and_is_undone(
    test_database_url,
):
    fault = IdleInTransactionTimeout(test_database_url, seconds=0.3)
    fault.before_workers()
    try:
        conn = psycopg.connect(test_database_url)
        conn.execute("SELECT 1")  # opens a transaction, then stays idle in it
        wait_until(
            lambda: not backend_alive(test_database_url, conn.info.backend_pid), "the timeout"
        )
        with pytest.raises(psycopg.Error, match="idle-in-transaction"):
            conn.execute("SELECT 1")
    finally:
        fault.stop()
    with psycopg.connect(test_database_url) as fresh:
        setting = fresh.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0]
    assert setting == "0"


@pytest.mark.django_db(transaction=True)
def test_lock_holder_holds_the_job_row(job, test_database_url):
    holder = JobLockHolder(test_database_url, hold=1.5)
    holder.job_id = job.pk
    thread = threading.Thread(target=holder.strike)
    thread.start()
    wait_until(lambda: holder.events, "the holder to take the row lock", interval=0.01)
    with psycopg.connect(test_database_url) as conn, pytest.raises(psycopg.errors.LockNotAvailable):
        conn.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR UPDATE NOWAIT", (job.pk,))
    thread.join()
    assert [e.fault for e in holder.events] == ["hold_job_lock"]


def test_worker_killer_kills_children_only():
    code = (
        "import subprocess, sys, time\n"
        "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
        " for _ in range(3)]\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(lambda: len(psutil.Process(parent.pid).children()) == 3, "3 children", 20)
        killer = WorkerKiller(lambda: parent.pid, count=1, interval=1)
        killer.strike()
        killer.strike()  # count exhausted: no second victim
        assert len(killer.events) == 1
        victim = int(killer.events[0].detail.removeprefix("pid "))
        wait_until(lambda: not running(victim), "the victim to die")
        alive = [c for c in psutil.Process(parent.pid).children() if c.status() != "zombie"]
        assert len(alive) == 2
        assert parent.poll() is None
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()


def test_nats_restart_keeps_port_and_jetstream_data(tmp_path, monkeypatch):
    monkeypatch.setenv("AMI_RUN_DIR", str(tmp_path))
    server = SERVERS["nats"]
    before = server.start()
    try:
        asyncio.run(_add_stream(before.url))
        NatsRestarter(interval=1).strike()
        after = server.read_state()
        assert after.port == before.port and after.pid != before.pid
        assert asyncio.run(_stream_messages(after.url)) == 1
    finally:
        server.stop()


def backend_alive(database_url: str, pid: int) -> bool:
    """Whether the server backend `pid` still runs (seen from another connection)."""
    with psycopg.connect(database_url) as conn:
        query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
        return conn.execute(query, (pid,)).fetchone() is not None


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _add_stream(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="restart_check", subjects=["restart_check.>"])
    await js.publish("restart_check.one", b"kept")
    await nc.close()


async def _stream_messages(url: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info("restart_check")
    await nc.close()
    return info.state.messages
