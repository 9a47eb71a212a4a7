"""JobLogBudget: how much of one job's log budget the writers have taken, and what they elided.

One row per job that logged, written only by `ami.jobs.logging.budget_ledger` (guarded
single-statement upserts on the `logs` connection; see that module and `ami.jobs.locking`).
No foreign-key constraint on the job, like `JobLog`: its check would take FOR KEY SHARE on
the hot job row. A job's row is deleted with the job (Django's cascade).
"""

from __future__ import annotations

from django.db import models


class JobLogBudget(models.Model):
    job = models.OneToOneField(
        "jobs.Job",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="log_budget",
        db_constraint=False,
    )
    # Reserved by the writers so far (lines below WARNING, and their bytes): every process
    # stores only what it reserved, so the job's stored lines never exceed these.
    lines_reserved = models.BigIntegerField(default=0)
    bytes_reserved = models.BigIntegerField(default=0)
    # The grant of the latest reservation. An UPDATE's SET sees the row as it was, so the
    # statement can both add the grant and return it (PostgreSQL < 18 has no RETURNING OLD).
    last_grant_lines = models.BigIntegerField(default=0)
    last_grant_bytes = models.BigIntegerField(default=0)
    # Lines past the budget that were not stored, and their bytes (the page's marker).
    elided_lines = models.BigIntegerField(default=0)
    elided_bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"Job #{self.job_id}: {self.elided_lines} log lines elided"

    @classmethod
    def elided(cls, job_id: int) -> tuple[int, int]:
        """(lines, bytes) of the job's log elided past its budget so far; (0, 0) if none."""
        found = cls.objects.filter(job_id=job_id).values_list("elided_lines", "elided_bytes")
        return found.first() or (0, 0)
