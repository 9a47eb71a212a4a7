"""Who sees which jobs: the jobs of the projects a user belongs to (see `ami.main.access`)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from ami.jobs.api.horizon import HORIZON_SQL_PARAMS, horizon_with
from ami.jobs.models import Job, JobLogBudget
from ami.main.access import visible_projects
from ami.main.models import Project

# `visible_jobs(user).filter(pk=job)` and the log horizon H in one statement: a log page's
# access check, its job's partition key, H and the lines its log budget elided cost one
# round trip, not four.
_VISIBLE_JOB_HORIZON_SQL = f"""
SELECT ({HORIZON_SQL_PARAMS}), job.log_partition_key,
       COALESCE(budget.elided_lines, 0), COALESCE(budget.elided_bytes, 0)
FROM {Job._meta.db_table} AS job
LEFT JOIN {JobLogBudget._meta.db_table} AS budget ON budget.job_id = job.id
WHERE job.id = %s AND job.project_id IN (
  SELECT project_id FROM {Project.members.through._meta.db_table} WHERE user_id = %s)
"""


def visible_jobs(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(project__in=visible_projects(user))


def visible_job_horizon(
    user: AbstractBaseUser | AnonymousUser, job_id: int
) -> tuple[int, datetime, int, int] | None:
    """`(H, the job's log partition key, lines and bytes its log budget elided)` if `user`
    sees the job (as `visible_jobs`), else None.

    H is `ami.jobs.api.horizon.log_horizon()`, taken in the same statement: run the row
    query after this returns.
    """
    if not user.is_authenticated:
        return None
    row = horizon_with(_VISIBLE_JOB_HORIZON_SQL, (job_id, user.pk))
    return None if row is None else (row[0], row[1], row[2], row[3])
