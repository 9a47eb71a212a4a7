"""What one `ami loadtest` invocation runs: sizes, modes and faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ami_lab.loadtest.phase_faults import PhaseFaultSpec

LOG_MODES = ("legacy_json", "in_transaction", "sync", "buffered", "redis")
# Modes whose emit returns only once the line is kept outside the process (Redis): at a
# SIGKILL, only the line whose call had not returned may be lost, not a window of lines.
DURABLE_EMIT_MODES = frozenset({"redis"})
REDIS_LEASE = 2.0  # seconds: a killed worker's Redis stream is drained this soon after
REDIS_DRAIN_TIMEOUT = 60.0  # seconds the run waits, after the stack stopped, for Redis to drain
LEGACY_MODES = frozenset({"legacy_json", "in_transaction"})
WORKER_APP_NAME = "ami-lt-celery"  # application_name of the Celery workers' DB connections
WORKER_CONNECTIONS = WORKER_APP_NAME  # prefix: also matches their log connections (-joblog)


@dataclass
class FaultOptions:
    idle_in_transaction_timeout: float | None = None  # seconds
    soft_time_limit: float | None = None  # seconds
    terminate_connections_every: float | None = None  # seconds
    kill_workers: int = 0
    restart_nats: bool = False
    hold_job_lock: float | None = None  # seconds

    @property
    def any(self) -> bool:
        return any(
            (self.idle_in_transaction_timeout, self.soft_time_limit,
             self.terminate_connections_every, self.kill_workers, self.restart_nats,
             self.hold_job_lock)
        )  # fmt: skip


@dataclass
class LoadConfig:
    images: int = 742
    modes: list[str] = field(default_factory=lambda: list(LOG_MODES))
    results_concurrency: int = 8
    processing_workers: int = 2
    worker_concurrency: int = 2
    batch: int = 8
    inference_delay: float = 0.02  # seconds per image
    timeout: float = 900.0  # seconds per mode
    buffer_interval: float = 0.25  # seconds: the buffered backend's flush interval
    hostile_every: int = 0  # every N-th worker log line carries hostile content (0: none)
    # Job log lines a results worker writes per result before saving it, as a pipeline that
    # logs per image does (upstream's did): the log volume the incident needs, now that the
    # product logs one line per saved batch.
    lines_per_result: int = 1
    nats_request_timeout: float = 2.0  # seconds: short, so a NATS outage of seconds fails calls
    faults: FaultOptions = field(default_factory=FaultOptions)
    phase_faults: list[PhaseFaultSpec] = field(default_factory=list)
    seed: int | None = None  # the seed the phase faults were drawn from, if random
