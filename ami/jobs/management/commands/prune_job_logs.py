"""`ami prune_job_logs`: JobLog retention by age, per-job cap and orphans (see retention.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ami.jobs.logging.retention import (
    DEFAULT_BATCH_SIZE,
    parse_age,
    prune_older_than,
    prune_orphans,
    prune_per_job,
)


class Command(BaseCommand):
    help = "Delete job log rows older than an age and/or beyond the newest N per job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", help="age, e.g. 30d, 12h, 2w")
        parser.add_argument("--keep-per-job", type=int, help="keep at most the newest N per job")
        parser.add_argument(
            "--orphans", action="store_true", help="delete lines whose job no longer exists"
        )
        parser.add_argument(
            "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per DELETE"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, do not delete")

    def handle(
        self,
        *args: object,
        older_than: str | None,
        keep_per_job: int | None,
        orphans: bool,
        batch_size: int,
        dry_run: bool,
        **options: object,
    ) -> None:
        if older_than is None and keep_per_job is None and not orphans:
            raise CommandError("give --older-than, --keep-per-job, --orphans, or a combination")
        if keep_per_job is not None and keep_per_job < 0:
            raise CommandError("--keep-per-job must be 0 or more")
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        try:
            age = parse_age(older_than) if older_than is not None else None
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from exc
        deleted = 0
        if age is not None:
            deleted += prune_older_than(age, batch_size, dry_run)
        if keep_per_job is not None:
            deleted += prune_per_job(keep_per_job, batch_size, dry_run)
        if orphans:
            deleted += prune_orphans(batch_size, dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {deleted} job log rows")
