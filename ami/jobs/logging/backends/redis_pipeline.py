"""Append commands sent to Redis without waiting for them to run (the `redis` emit path).

Why a line survives a SIGKILL of its writer once `send` returned: `send` returns after
`sendall` handed the whole command to the kernel, and a killed process's sockets are closed
by the kernel, which still delivers what was written (then FIN); Redis runs every complete
command it received before it sees the end of the connection. That holds only while the
socket has nothing unread: Linux answers the close of a socket with unread received bytes
with a reset, which drops what was not transmitted yet, and Redis, failing to write a reply
to it, drops the rest of its input. So the connection runs under `CLIENT REPLY OFF`: Redis
sends nothing back, except at a checkpoint, which is awaited with the send lock held (no
`send` returns while its reply may sit unread, and when it is there Redis ran every command
before it).

Commands sent since the last checkpoint wait in a bounded deque (`limit`):

- a checkpoint (`CLIENT REPLY ON`, the checkpoint script, `CLIENT REPLY OFF`) is taken on
  `checkpoint()` (the backend's flush) and when the deque is full; its reply proves Redis ran
  every command sent before, which leave the deque;
- a broken connection (killed, Redis restarted: the reader thread sees the end; a checkpoint
  unanswered within `timeout`; a write that failed) is replaced and every command of the
  deque sent again: at least once into Redis. A line so appended twice is two entries with
  one row `key`; the drain's `ON CONFLICT DO NOTHING` stores it once;
- if no new connection can be made, the deque's lines go to `orphaned` (the backend writes
  them through `sync`; a copy Redis may also hold is skipped by its key when drained).

An append Redis refuses is counted by the append script itself (no reply is read), and the
checkpoint's reply brings the count back.

redis-py's pieces: `Connection` connects, packs (`pack_command(s)`) and parses
(`read_response`). One `Connection` is shared by two threads in a narrow way: only the reader
thread reads it, and a connection is closed only by the thread that replaced it while the
reader is not reading it (else shut down, which ends the reader's read); the sending thread
only writes, with `sendall` on its socket (`Connection._sock`, redis-py's attribute).
`send_packed_command` is not used because on an error it disconnects, resetting the parser
the reader may be using at that moment.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ami.jobs.logging.backends.redis_stream import REDIS_ERRORS
from ami.jobs.logging.rows import LogRow

MAX_UNCONFIRMED = 5_000  # commands sent since the last checkpoint (then one is taken)
REPLY_ON, REPLY_OFF = ("CLIENT", "REPLY", "ON"), ("CLIENT", "REPLY", "OFF")


@dataclass(frozen=True, slots=True)
class Sent:
    rows: list[LogRow]
    data: bytes  # the packed command, to send again on a new connection


class Broken(redis.ConnectionError):
    """No connection to Redis could be made."""


class Pipeline:
    """One process's connection for appends; see the module."""

    def __init__(
        self,
        *,
        url: str,
        timeout: float,
        scripts: list[str],
        command: Callable[[list[LogRow]], tuple],
        checkpoint: Callable[[], tuple],
        orphaned: Callable[[list[LogRow], BaseException], None],
        limit: int = MAX_UNCONFIRMED,
    ) -> None:
        """`command(rows)`: the arguments of the command appending rows; `checkpoint()`: of
        the command whose reply `checkpoint` returns; `scripts`: loaded on every connection."""
        self.timeout = timeout
        self.limit = limit
        self._scripts = scripts
        self._command, self._checkpoint_command = command, checkpoint
        self._orphaned = orphaned
        self._pool = redis.ConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._packer = self._pool.make_connection()  # never connected: packs only
        self._send_lock = threading.Lock()  # one writer on the socket; held at a checkpoint
        self._cond = threading.Condition()  # the state below
        self._unconfirmed: deque[Sent] = deque()
        self._conn: redis.Connection | None = None
        self._reading: redis.Connection | None = None  # the one the reader is reading now
        self._broken: redis.Connection | None = None  # the reader saw its end
        self._due = 0  # replies the checkpoint in progress still waits for
        self._result: Any = None
        self._stopping = False
        self._reader: threading.Thread | None = None

    # -- sending -------------------------------------------------------------------------

    def send(self, rows: list[LogRow]) -> None:
        """Send the append of rows; return once the kernel has it. Raises REDIS_ERRORS if the
        rows were not sent (the caller writes them another way): the deque stayed full for
        `timeout`, or no connection could be made (the deque's lines were then orphaned)."""
        sent = Sent(rows, b"".join(self._packer.pack_command(*self._command(rows))))
        with self._send_lock:
            if len(self._unconfirmed) >= self.limit:
                self._confirm()
            with self._cond:
                self._unconfirmed.append(sent)
                conn = self._conn
            if conn is not None and self._write(conn, sent.data):
                return
            self._reconnect_or_orphan(keep=sent)  # sends `sent` with the deque, or raises

    def checkpoint(self) -> Any:
        """Wait until Redis ran every command sent before; return the checkpoint's reply
        (None if there is no connection and nothing to confirm).
        Raises REDIS_ERRORS (then the lines sent were orphaned, or are still to confirm)."""
        with self._send_lock:
            if self._conn is None and not self._unconfirmed:
                return None  # nothing sent (Redis unreachable: lines went another way)
            return self._confirm()

    def _confirm(self) -> Any:
        """(With the send lock held.) A checkpoint; one new connection at most if the
        current one breaks or does not answer within `timeout`."""
        for _attempt in range(2):
            conn = self._conn
            if conn is None:
                self._reconnect_or_orphan()
                conn = self._conn
            with self._cond:
                count, self._due, self._result = len(self._unconfirmed), 2, None
            if self._write(conn, self._marker()):
                with self._cond:
                    self._cond.wait_for(
                        lambda c=conn: self._due == 0 or self._broken is c, self.timeout
                    )
                    answered = self._due == 0 and self._conn is conn
                    result = self._result
                    if answered and not isinstance(result, redis.exceptions.NoScriptError):
                        for _ in range(count):
                            self._unconfirmed.popleft()
                        return result
            # Broken, silent, or a Redis that forgot the scripts (SCRIPT FLUSH: the appends
            # since the last checkpoint failed too, unanswered): load them, send again.
            self._reconnect_or_orphan()
        raise redis.TimeoutError("job log Redis did not answer a checkpoint")

    def _marker(self) -> bytes:
        commands = [REPLY_ON, self._checkpoint_command(), REPLY_OFF]
        return b"".join(self._packer.pack_commands(commands))

    def _write(self, conn: redis.Connection, data: bytes) -> bool:
        """False if the socket failed (it is shut down: the reader's read fails too)."""
        sock = conn._sock
        if sock is None:
            return False  # closed by `stop`
        try:
            sock.sendall(data)
        except OSError:  # socket.timeout included
            _shut(conn)
            return False
        return True

    # -- connecting --------------------------------------------------------------------------

    def _reconnect_or_orphan(self, keep: Sent | None = None) -> None:
        """(With the send lock held.) A new connection carrying the deque again; if none can
        be made, the deque's lines (but `keep`'s, left to the caller) go to `orphaned`, and
        Broken is raised."""
        with self._cond:
            old, self._conn, self._broken = self._conn, None, None
            self._retire(old)
        try:
            conn = self._connect()
            with self._cond:  # the reader cannot take a reply while the commands go out
                if self._unconfirmed:
                    conn._sock.sendall(b"".join(item.data for item in self._unconfirmed))
                self._conn = conn
                self._ensure_reader()
                self._cond.notify_all()
        except REDIS_ERRORS as exc:
            with self._cond:
                orphans = [item for item in self._unconfirmed if item is not keep]
                self._unconfirmed.clear()
                self._cond.notify_all()
            self._orphaned([row for item in orphans for row in item.rows], exc)
            raise Broken(f"job log Redis unreachable: {exc}") from exc

    def _connect(self) -> redis.Connection:
        conn = self._pool.make_connection()
        try:
            conn.connect()
            for script in self._scripts:
                conn.send_command("SCRIPT", "LOAD", script)
                conn.read_response()
            conn.send_command(*REPLY_OFF)  # no reply: see the module
        except BaseException:
            conn.disconnect()
            raise
        return conn

    def _retire(self, conn: redis.Connection | None) -> None:
        """(With self._cond held.) Close a replaced connection, or, while the reader reads
        it, shut it so its read ends (the reader closes it then)."""
        if conn is None:
            return
        if conn is self._reading:
            _shut(conn)
        else:
            conn.disconnect()

    # -- the reader thread: checkpoint replies, and the end of a connection --------------------

    def _ensure_reader(self) -> None:
        # Called with self._cond held.
        if self._reader is None or not self._reader.is_alive():
            self._stopping = False
            self._reader = threading.Thread(target=self._read, name=READER_NAME, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        while (conn := self._next_connection()) is not None:
            try:
                reply = conn.read_response(disconnect_on_error=False)
            except redis.TimeoutError:
                if not self._idle(conn):
                    self._lost(conn)
                continue
            except redis.ResponseError as exc:
                reply = exc  # the checkpoint's own error; its caller raises it
            except REDIS_ERRORS:
                self._lost(conn)
                continue
            self._settle(conn, reply)

    def _next_connection(self) -> redis.Connection | None:
        with self._cond:
            self._reading = None
            while self._conn is None and not self._stopping:
                self._cond.wait()
            self._reading = None if self._stopping else self._conn
            return self._reading

    def _idle(self, conn: redis.Connection) -> bool:
        """No reply within the socket timeout: fine unless a checkpoint waits for one."""
        with self._cond:
            return self._due == 0 or conn is not self._conn

    def _settle(self, conn: redis.Connection, reply: Any) -> None:
        with self._cond:
            self._reading = None
            if conn is not self._conn:
                conn.disconnect()  # replaced: its late replies are not wanted
                return
            if self._due > 0:
                self._due -= 1  # the first is `CLIENT REPLY ON`'s OK
                self._result = reply
                self._cond.notify_all()

    def _lost(self, conn: redis.Connection) -> None:
        """The connection ended: a new one, with the deque sent again."""
        with self._cond:
            self._reading = None
            if conn is not self._conn:
                conn.disconnect()
                return
            self._broken = conn
            self._cond.notify_all()  # a checkpoint waiting on it reconnects itself
        with self._send_lock:
            if self._conn is conn:
                with contextlib.suppress(*REDIS_ERRORS):  # orphaned, reported by the backend
                    self._reconnect_or_orphan()

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, timeout: float | None) -> None:
        """End the reader thread and close the connection (sent lines stay delivered)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        with self._send_lock, self._cond:
            if reader is None or not reader.is_alive():
                old, self._conn = self._conn, None
                self._retire(old)

    def unconfirmed(self) -> int:
        with self._cond:
            return len(self._unconfirmed)


READER_NAME = "ami-joblog-redis-replies"


def _shut(conn: redis.Connection) -> None:
    """End the connection for both threads, without closing the socket the reader uses."""
    sock = conn._sock
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed by the peer
        sock.shutdown(socket.SHUT_RDWR)
