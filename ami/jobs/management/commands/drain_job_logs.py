"""`ami drain_job_logs`: store the job log lines dead writers left in Redis (`redis` backend)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ami.jobs.logging.backends.redis import drain_until_empty


class Command(BaseCommand):
    help = (
        "Drain the Redis streams of job log writers that are gone (their lease expired) "
        "into JobLog; what the Celery beat task drain_job_log_streams does every few seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait", type=float, default=0.0,
            help="seconds to keep draining until no stream is left (leases expire meanwhile)",
        )  # fmt: skip

    def handle(self, *args: object, wait: float, **options: object) -> None:
        left = drain_until_empty(wait)
        if left:
            raise CommandError(f"{left} stream(s) still hold lines or belong to live writers")
        self.stdout.write("every job log line in Redis is stored")
