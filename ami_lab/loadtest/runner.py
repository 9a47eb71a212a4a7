"""Run one real job per log write mode, with the same load and faults, and measure it."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from rich.console import Console

from ami.jobs.lifecycle import cancel_job, create_job, start_job
from ami.jobs.logging.backends.redis import drain_until_empty
from ami.jobs.models import ImageTask, Job, JobLog
from ami.jobs.progress import JobProgress, read_progress
from ami.jobs.states import StageKey, TaskState
from ami.main.models import Detection, Project, SourceImage
from ami.ml.models import Pipeline
from ami_lab.demo.setup import ensure_images, ensure_pipeline, processing_key
from ami_lab.jobs import wait_for_job_end
from ami_lab.loadtest import error_lines, verdict
from ami_lab.loadtest.config import (
    DURABLE_EMIT_MODES,
    LEGACY_MODES,
    REDIS_DRAIN_TIMEOUT,
    REDIS_LEASE,
    WORKER_APP_NAME,
    WORKER_CONNECTIONS,
    FaultOptions,
    LoadConfig,
)
from ami_lab.loadtest.expected import expected_detections
from ami_lab.loadtest.faults import (
    ConnectionTerminator,
    FaultPlan,
    IdleInTransactionTimeout,
    JobLockHolder,
    NatsRestarter,
    SoftTimeLimit,
    WorkerKiller,
)
from ami_lab.loadtest.ledger import (
    HOSTILE_EVERY_ENV,
    LEDGER_ENV,
    LINES_PER_RESULT_ENV,
    Emitted,
    emitted_lines,
    stored_ids,
    task_records,
)
from ami_lab.loadtest.lock_sampler import LockSampler, LockWaitStats
from ami_lab.loadtest.lost_lines import describe_lost, read_logs
from ami_lab.loadtest.phase_faults import PhaseFault, Targets
from ami_lab.loadtest.phases import ORDER, PhaseWatcher
from ami_lab.loadtest.report import ModeOutcome
from ami_lab.processes import WaitTimeout, free_port, poll_until
from ami_lab.servers import SERVERS
from ami_lab.stack import (
    ProcessingWorkerOptions,
    StackOptions,
    start_processing_workers,
    start_stack,
)
from ami_lab.supervisor import Supervisor
from ami_lab.upstream import backend_setting
from ami_lab.worker.model import DETECTOR_KEY

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds
NATS_ACK_WAIT = 15.0  # seconds
# A lost line counts as "in flight at SIGKILL" if its process was killed within the buffered
# backend's flush interval plus this margin after emitting it. Every mode gets that window;
# for sync it is generous (its call returns only after the commit), so a sync line lost
# outside it is a real loss.
KILL_MARGIN = 1.0  # seconds
CELERY_READY_TIMEOUT = 120.0  # seconds for the Celery workers to report "ready."


def run_all(config: LoadConfig, out_dir: Path, console: Console) -> list[ModeOutcome]:
    """Run every mode of `config` one after another on the same images."""
    with console.status("Preparing images and pipeline..."):
        project = ensure_images(config.images)
        pipeline = ensure_pipeline()
        key = processing_key("loadtest workers")
    results = []
    for mode in config.modes:
        console.rule(f"mode: {mode}")
        results.append(run_mode(mode, config, project, pipeline, key, out_dir / mode, console))
    return results


def run_mode(
    mode: str,
    config: LoadConfig,
    project: Project,
    pipeline: Pipeline,
    key: str,
    out_dir: Path,
    console: Console,
) -> ModeOutcome:
    job = create_job(project, pipeline, f"loadtest {mode}", {"limit": config.images})
    ledger_dir = out_dir / "ledger"
    ledger_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    supervisor = Supervisor(out_dir / "logs", {})
    plan = build_faults(config.faults, lambda: _pid_of(supervisor, "celery-results"))
    phase_faults = build_phase_faults(config, supervisor)
    plan.faults.extend(phase_faults)
    supervisor.env = {**_worker_env(mode, config, ledger_dir), **plan.env()}
    sampler = LockSampler(settings.DATABASE_URL)
    watcher = PhaseWatcher(settings.DATABASE_URL, settings.NATS_URL, job.pk)
    started = time.monotonic()
    try:
        plan.before_workers()
        start_stack(
            supervisor,
            StackOptions(
                port=port,
                results_concurrency=config.results_concurrency,
                celery_app="ami_lab.loadtest.worker_app",
                beat=False,
                web_app_name="ami-lt-web",  # faults aim at the Celery workers' connections
            ),
        )
        wait_for_celery_ready(supervisor, CELERY_READY_TIMEOUT)
        sampler.start()
        watcher.start()
        watcher.wait_first_sample()
        started = time.monotonic()
        open_phase_faults(phase_faults, "before", job.pk, watcher)
        start_job(job.pk)  # waits while a start fault holds the job row
        for fault in phase_faults:
            if fault.arm_point == "phase":
                fault.open(job.pk, watcher)
        start_processing_workers(
            supervisor,
            port,
            config.processing_workers,
            ProcessingWorkerOptions(
                key, job.pk, config.worker_concurrency, config.batch, config.inference_delay
            ),
        )
        plan.start(job.pk)
        wait_until_final(job, config.timeout, console)
    finally:
        wall = time.monotonic() - started
        plan.stop()
        watcher.stop()
        supervisor.stop([c.name for c in supervisor.children if c.name.startswith("worker")])
        supervisor.stop()  # SIGTERM: Celery's warm shutdown flushes buffered log lines
        locks = sampler.stop()
        if mode == "redis":
            drain_redis(console)
    job.refresh_from_db()
    stuck = ""
    if not job.is_final:
        stuck = _describe_stuck(job.pk, config.timeout)
        cancel_job(job.pk)
        job.refresh_from_db()
    result = measure(mode, job, config, out_dir, ledger_dir, plan, locks, wall)
    result.stuck = stuck
    result.phase_faults = [phase_fault_outcome(fault, watcher) for fault in phase_faults]
    result.phases_seen = sorted(watcher.timeline.first_seen(), key=lambda p: ORDER[p])
    return result


def _describe_stuck(job_id: int, timeout: float) -> str:
    progress = read_progress(job_id)
    stage = progress.process
    return (
        f"job still {progress.status} after the {timeout:.0f} s timeout"
        f" (process stage {stage.status}, {stage.done}/{stage.total} done); cancelled it"
    )


def wait_for_celery_ready(supervisor: Supervisor, timeout: float) -> None:
    """Wait until every Celery worker logged "ready.", so faults meet a running pool."""
    workers = [c for c in supervisor.children if c.name.startswith("celery-")]
    try:
        poll_until(
            lambda: all(" ready." in c.log_path.read_text(errors="replace") for c in workers),
            timeout=timeout,
            what="the Celery workers to be ready",
            interval=POLL_INTERVAL,
        )
    except WaitTimeout:
        logger.warning("Celery workers not ready after %.0f s; starting the job anyway", timeout)


def build_phase_faults(config: LoadConfig, supervisor: Supervisor) -> list[PhaseFault]:
    targets = Targets(
        database_url=settings.DATABASE_URL,
        worker_connections=WORKER_CONNECTIONS,
        jobs_worker_pid=lambda: _pid_of(supervisor, "celery-jobs"),
        results_worker_pid=lambda: _pid_of(supervisor, "celery-results"),
    )
    if any(spec.kind == "nats_down" for spec in config.phase_faults) and not _nats_is_embedded():
        raise RuntimeError("nats_down faults need the embedded NATS server (NATS_URL is set)")
    return [PhaseFault(spec, targets) for spec in config.phase_faults]


def open_phase_faults(
    faults: list[PhaseFault], arm_point: str, job_id: int, watcher: PhaseWatcher
) -> None:
    """Open the windows armed at `arm_point` and wait until they are open."""
    armed = [fault for fault in faults if fault.arm_point == arm_point]
    for earlier, later in zip(armed, armed[1:], strict=False):
        later.after = earlier  # faults come in phase order
    for fault in armed:
        fault.open(job_id, watcher)
    for fault in armed:
        fault.wait_opened()


def phase_fault_outcome(fault: PhaseFault, watcher: PhaseWatcher) -> dict:
    """What one phase fault did: its window and whether it covered its phase."""
    window = fault.window
    covered = window is not None and watcher.timeline.covered(fault.spec.phase, *window)
    return {
        "fault": fault.spec.label(),
        "opened": window is not None,
        "reached": watcher.timeline.reached(fault.spec.phase),
        "covered": covered,
        "seconds": round(window[1] - window[0], 2) if window else 0.0,
    }


def build_faults(options: FaultOptions, results_worker_pid) -> FaultPlan:
    url = settings.DATABASE_URL
    faults = []
    if options.idle_in_transaction_timeout:
        faults.append(IdleInTransactionTimeout(url, options.idle_in_transaction_timeout))
    if options.soft_time_limit:
        faults.append(SoftTimeLimit(options.soft_time_limit))
    if options.terminate_connections_every:
        faults.append(
            ConnectionTerminator(url, options.terminate_connections_every, WORKER_CONNECTIONS)
        )
    if options.kill_workers:
        faults.append(
            WorkerKiller(results_worker_pid, options.kill_workers, interval=3.0, database_url=url)
        )
    if options.restart_nats and _nats_is_embedded():
        faults.append(NatsRestarter(interval=3.0))
    elif options.restart_nats:
        logger.warning("--restart-nats needs the embedded NATS server (NATS_URL is external)")
    if options.hold_job_lock:
        faults.append(JobLockHolder(url, options.hold_job_lock))
    return FaultPlan(faults)


def _nats_is_embedded() -> bool:
    state = SERVERS["nats"].read_state()
    return state is not None and state.url == settings.NATS_URL


def wait_until_final(job: Job, timeout: float, console: Console) -> None:
    with console.status("") as status:

        def show(progress: JobProgress) -> None:
            done, total = progress.process.done, progress.process.total
            status.update(f"job {job.pk} {progress.status}: {done}/{total}")

        try:
            wait_for_job_end(job.pk, timeout=timeout, on_progress=show, interval=POLL_INTERVAL)
        except WaitTimeout as exc:
            console.print(f"[red]{exc}[/red]")


def measure(
    mode: str,
    job: Job,
    config: LoadConfig,
    out_dir: Path,
    ledger_dir: Path,
    plan: FaultPlan,
    locks: LockWaitStats,
    wall: float,
) -> ModeOutcome:
    result = ModeOutcome(mode=mode, status=job.status, failure_reason=job.failure_reason)
    result.wall_seconds = wall
    _count_images(result, job)
    result.results_per_second = (result.images_processed + result.images_failed) / wall
    _count_tasks(result, ledger_dir)
    _count_lines(result, mode, job, ledger_dir, plan, config.buffer_interval, out_dir / "logs")
    errors = error_lines.parse(_log_lines(out_dir / "logs"))
    result.error_lines = error_lines.by_kind(errors)
    result.fault_events = len(plan.events)
    result.most_error_lines_per_fault = error_lines.most_per_fault(
        [e for e in errors if e.kind not in error_lines.FAULT_REPORTS], plan.events
    )
    result.lock_wait_samples = locks.samples_waiting
    result.lock_max_waiters = locks.max_waiters
    result.lock_waiter_seconds = locks.waiter_seconds
    return result


def _count_images(result: ModeOutcome, job: Job) -> None:
    progress = read_progress(job.pk)
    collect, stage = progress.stages[StageKey.COLLECT], progress.process
    states = dict(ImageTask.objects.filter(job=job).values_list("state").annotate(n=Count("id")))
    result.images_total = stage.total
    result.images_processed = stage.processed
    result.images_failed = stage.failed
    image_ids = ImageTask.objects.filter(job=job).values("source_image_id")
    detections = Detection.objects.filter(
        source_image_id__in=image_ids, algorithm__key=DETECTOR_KEY
    ).count()
    images = SourceImage.objects.filter(pk__in=image_ids).order_by("pk")
    result.detections_expected = expected_detections(tuple(images.values_list("path", flat=True)))
    result.detections_saved = detections
    checks = {
        "job status does not match its image counts": job.status
        != verdict.expected_status(stage.processed, stage.failed),
        "collect total != images": collect.total != stage.total,
        "processed + failed != total": stage.processed + stage.failed != stage.total,
        "images failed (every image can be processed)": stage.failed != 0,
        "stage progress != done / total": not _progress_exact(stage),
        "DONE tasks != processed": states.get(TaskState.DONE, 0) != stage.processed,
        "FAILED tasks != failed": states.get(TaskState.FAILED, 0) != stage.failed,
        "tasks still PENDING": states.get(TaskState.PENDING, 0) != 0,
        # Rows of earlier runs on the same images count too: compare only once all are done.
        "detections counted != rows": stage.processed == stage.total
        and stage.detections != detections,
        "detections saved != expected (the model rerun here)": detections
        != result.detections_expected,
    }
    result.counter_problems = [name for name, bad in checks.items() if bad]
    result.counters_exact = not result.counter_problems


def _progress_exact(stage) -> bool:
    expected = (stage.processed + stage.failed) / stage.total if stage.total else 1.0
    return abs(stage.progress - expected) < 1e-9


def _count_tasks(result: ModeOutcome, ledger_dir: Path) -> None:
    runs = task_records(ledger_dir)
    durations = sorted(seconds * 1000 for _, seconds, _ in runs)
    result.task_runs = len(runs)
    result.task_failures = sum(1 for _, _, outcome in runs if outcome != "SUCCESS")
    if len(durations) >= 2:
        cuts = statistics.quantiles(durations, n=100, method="inclusive")
        result.task_p50_ms, result.task_p99_ms = cuts[49], cuts[98]


def _count_lines(
    result: ModeOutcome,
    mode: str,
    job: Job,
    ledger_dir: Path,
    plan: FaultPlan,
    interval: float,
    logs_dir: Path | None = None,
) -> None:
    emitted = emitted_lines(ledger_dir)
    stored = stored_ids(_stored_messages(mode, job, emitted))
    lost = [line for line in emitted if line.line_id not in stored]
    result.lines_emitted = len(emitted)
    result.lines_stored = sum(1 for line in emitted if line.line_id in stored)
    result.lines_lost = len(lost)
    result.lines_lost_hostile = sum(1 for line in lost if line.hostile)
    result.lines_duplicated = sum(count - 1 for count in stored.values() if count > 1)
    result.lines_other_jobs = sum(
        1 for line in emitted if line.job_id is not None and line.job_id != job.pk
    )
    kills = {
        int(event.detail.split()[1]): event.at
        for event in plan.events
        if event.detail.startswith("pid ")  # kill_workers and the phase faults' sigkill
    }
    if mode in DURABLE_EMIT_MODES:
        in_flight = in_call_at_kill(lost, emitted, kills)
    else:
        in_flight = [
            line.line_id
            for line in lost
            if line.pid in kills and 0 <= kills[line.pid] - line.at <= interval + KILL_MARGIN
        ]
    result.lines_lost_at_sigkill = len(in_flight)
    if lost:
        logs = read_logs(logs_dir) if logs_dir is not None else []
        result.lost_lines = [line.as_dict() for line in describe_lost(lost, kills, in_flight, logs)]


def in_call_at_kill(
    lost: list[Emitted], emitted: list[Emitted], kills: dict[int, float]
) -> list[str]:
    """The lost lines that were each killed process's last line before its kill: the one
    whose call may not have returned. Any other lost line is a real loss."""
    last: dict[int, Emitted] = {}
    for line in emitted:
        before_kill = line.pid in kills and line.at <= kills[line.pid]
        if before_kill and (line.pid not in last or line.at >= last[line.pid].at):
            last[line.pid] = line
    lost_ids = {line.line_id for line in lost}
    return [line.line_id for line in last.values() if line.line_id in lost_ids]


def drain_redis(console: Console) -> None:
    """Store what killed workers left in Redis (the stack runs no beat): wait for their
    leases to expire, drain, as `ami drain_job_logs --wait` does."""
    with console.status("Draining job log lines left in Redis..."):
        left = drain_until_empty(REDIS_DRAIN_TIMEOUT)
    if left:
        console.print(f"[red]{left} Redis stream(s) not drained[/red]")


def _stored_messages(mode: str, job: Job, emitted: list[Emitted]) -> Iterable[str]:
    """Messages stored for the run's job and for any other job a line was logged for.

    A worker can run a task of an earlier run's job (its message restored to the broker
    queue at that run's shutdown, received by this run's worker at start): its line is
    logged for that job, and stored there.
    """
    jobs = {job.pk} | {line.job_id for line in emitted if line.job_id is not None}
    if mode != "legacy_json":
        return JobLog.objects.filter(job_id__in=jobs).values_list("message", flat=True).iterator()
    messages: list[str] = []
    for legacy in Job.objects.filter(pk__in=jobs).values_list("legacy_logs", flat=True):
        legacy = legacy or {}
        messages.extend([*legacy.get("stdout", []), *legacy.get("stderr", [])])
    return messages


def _log_lines(logs_dir: Path) -> list[str]:
    lines: list[str] = []
    for path in sorted(logs_dir.glob("*.log")):
        lines.extend(path.read_text(errors="replace").splitlines())
    return lines


def _pid_of(supervisor: Supervisor, name: str) -> int:
    return next(child.pgid for child in supervisor.children if child.name == name)


def _worker_env(mode: str, config: LoadConfig, ledger_dir: Path) -> dict[str, str]:
    # The legacy modes run as upstream did: no lock_timeout on the log writes.
    lock_timeout = {"AMI_LOG_DB_LOCK_TIMEOUT_MS": "0"} if mode in LEGACY_MODES else {}
    return lock_timeout | {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "JOB_LOG_BACKEND": backend_setting(mode),
        "JOB_LOG_DUAL_WRITE": "false",
        "JOB_LOG_BUFFER_INTERVAL": str(config.buffer_interval),
        **({"JOB_LOG_REDIS_LEASE": str(REDIS_LEASE)} if mode == "redis" else {}),
        "AMI_APP_NAME": WORKER_APP_NAME,
        # A task failed by a fault leaves its NATS message unacked: redeliver it soon.
        "AMI_NATS_ACK_WAIT": str(NATS_ACK_WAIT),
        "AMI_NATS_REQUEST_TIMEOUT": str(config.nats_request_timeout),
        LEDGER_ENV: str(ledger_dir),
        HOSTILE_EVERY_ENV: str(config.hostile_every),
        LINES_PER_RESULT_ENV: str(config.lines_per_result),
    }
