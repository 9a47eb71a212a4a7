"""Job log lines in Redis: one stream per writer process, its codec and its drain lease.

Keys, under `ami-joblog:<namespace>` (the database's name: a test database and a development
database sharing one Redis never drain into each other):

- `...:streams`: a set naming every stream that may hold lines (the orphan drainer's list);
- `...:s:<host>:<pid>:<token>`: one writer process's lines, in emit order (`XADD *`);
- `...:lease:<stream>`: who may drain that stream now, a token with a PX expiry. The owner
  process takes it with its first line and renews it while alive; once a SIGKILLed owner's
  lease has expired, any other drainer may take it.

Each script runs atomically in Redis, so an append (which registers its stream) can never
interleave with the retirement of that stream by a drainer that found it empty.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ami.jobs.logging.process import HOSTNAME
from ami.jobs.logging.rows import LogRow

# What a Redis call may fail with (down, slow, refusing writes: OOM, read-only replica).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
FIELD = b"r"  # the row, encoded
JOB_FIELD = b"j"  # its job id, for the drainer's partition keys without decoding the row

StreamId = tuple[int, int]  # (milliseconds, sequence), as Redis orders entries

# KEYS: stream, registry, lease, refusals. ARGV: token, lease ms, rows... Returns the last
# entry id. An XADD Redis refuses (the key is not a stream, out of memory) is counted in the
# refusals hash, not raised: the pipelined emit reads no reply (see `redis_pipeline`).
APPEND = """
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2])
local id
for i = 3, #ARGV, 2 do
  local added = redis.pcall('XADD', KEYS[1], '*', 'j', ARGV[i], 'r', ARGV[i + 1])
  if type(added) == 'table' and added.err then
    redis.pcall('HINCRBY', KEYS[4], 'lines', 1)
    redis.pcall('HSET', KEYS[4], 'error', added.err)
  else
    id = added
  end
end
return id
"""
# KEYS: stream, refusals. The stream's last entry id (false if none) and the refusals counted
# since the last call (lines, error), which it resets: a pipelined writer's checkpoint.
CHECKPOINT = """
local last = false
local entries = redis.pcall('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if type(entries) == 'table' and entries[1] and entries[1][1] then last = entries[1][1] end
local refused = redis.call('HMGET', KEYS[2], 'lines', 'error')
redis.call('DEL', KEYS[2])
return {last, refused[1] or false, refused[2] or false}
"""
# KEYS: lease. ARGV: token, lease ms. Take a free lease or renew our own; 1 if held.
HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# KEYS: lease. ARGV: token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: stream, registry, lease, refusals. ARGV: token. Forget an empty stream whose lease
# we hold.
RETIRE = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('SREM', KEYS[2], KEYS[1])
return 1
"""


def connect(url: str, timeout: float) -> redis.Redis:
    """A client whose every call waits at most `timeout` seconds and is never retried: the
    caller falls back (emit) or tries again later (drain)."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def new_token() -> str:
    return secrets.token_hex(8)


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


# -- codec -----------------------------------------------------------------------------------


def encode(row: LogRow) -> str:
    """A row as compact JSON. ASCII-escaped: every str, even one with NUL or a lone surrogate
    (the sanitizer removes them, but the codec must not depend on it), round-trips exactly.
    `created_at` as integer microseconds and `key` as hex: both exactly as emitted."""
    micros = (row.created_at - EPOCH) // MICROSECOND
    fields = [row.job_id, row.level, micros, row.key_text, row.message, row.context]
    return json.dumps(fields, separators=(",", ":"))


def decode(data: bytes) -> LogRow:
    """The row `encode` made (ValueError, TypeError or KeyError for anything else)."""
    job_id, level, micros, key, message, context = json.loads(data)
    created_at = EPOCH + timedelta(microseconds=micros)
    return LogRow(job_id, level, message, context, created_at, int(key, 16))


def pairs(rows: list[LogRow]) -> list[int | str]:
    """The append script's arguments for rows: job id, encoded row, job id, ..."""
    return [value for row in rows for value in (row.job_id, encode(row))]


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: bytes
    job_id: bytes | None
    data: bytes | None


# -- one stream --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """The keys of one database's job log streams."""

    name: str

    @property
    def prefix(self) -> str:
        return f"ami-joblog:{self.name}"

    @property
    def registry(self) -> str:
        return f"{self.prefix}:streams"

    def new_stream_name(self, pid: int) -> str:
        return f"{self.prefix}:s:{HOSTNAME}:{pid}:{new_token()}"

    def lease_of(self, stream: str) -> str:
        return f"{self.prefix}:lease:{stream}"

    def refusals_of(self, stream: str) -> str:
        return f"{self.prefix}:refused:{stream}"


class Stream:
    """One writer's stream, and the scripts that append to, lease and retire it."""

    def __init__(self, client: redis.Redis, namespace: Namespace, name: str) -> None:
        self.client = client
        self.name = name
        self.keys = [
            name,
            namespace.registry,
            namespace.lease_of(name),
            namespace.refusals_of(name),
        ]
        self._append = client.register_script(APPEND)
        self._checkpoint = client.register_script(CHECKPOINT)
        self._hold = client.register_script(HOLD)
        self._release = client.register_script(RELEASE)
        self._retire = client.register_script(RETIRE)

    def append_command(self, rows: list[LogRow], token: str, lease_ms: int) -> tuple:
        """The arguments of the command `append` runs (sent pipelined by the backend)."""
        return ("EVALSHA", self._append.sha, 4, *self.keys, token, lease_ms, *pairs(rows))

    def checkpoint_command(self) -> tuple:
        """The arguments of the checkpoint script's call (see CHECKPOINT)."""
        return ("EVALSHA", self._checkpoint.sha, 2, self.keys[0], self.keys[3])

    def append(self, rows: list[LogRow], token: str, lease_ms: int) -> StreamId:
        """Add rows in one atomic call; return the last one's entry id."""
        # EVALSHA straight through `execute_command` (this runs on every emit); the first
        # call on a server that does not know the script yet (new, restarted) answers
        # NOSCRIPT, and the Script object loads it.
        try:
            last = self.client.execute_command(
                "EVALSHA", self._append.sha, 4, *self.keys, token, lease_ms, *pairs(rows)
            )  # fmt: skip
        except redis.exceptions.NoScriptError:
            last = self._append(keys=self.keys, args=[token, lease_ms, *pairs(rows)])
        return parse_id(last)

    def hold(self, token: str, lease_ms: int) -> bool:
        return bool(self._hold(keys=[self.keys[2]], args=[token, lease_ms]))

    def release(self, token: str) -> None:
        self._release(keys=[self.keys[2]], args=[token])

    def retire(self, token: str) -> bool:
        """Delete the stream if it is empty and we hold its lease (then unregistered)."""
        return bool(self._retire(keys=self.keys, args=[token]))

    def read(self, count: int) -> list[Entry]:
        """The oldest `count` entries (a malformed one has None for what it lacks)."""
        entries = self.client.xrange(self.name, "-", "+", count=count)
        return [Entry(entry_id, row.get(JOB_FIELD), row.get(FIELD)) for entry_id, row in entries]

    def ack(self, entry_ids: list[bytes]) -> None:
        """Remove entries: call only once their rows are committed."""
        if entry_ids:
            self.client.xdel(self.name, *entry_ids)

    def first_id(self) -> StreamId | None:
        entries = self.client.xrange(self.name, "-", "+", count=1)
        return parse_id(entries[0][0]) if entries else None
