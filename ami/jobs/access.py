"""Who sees which jobs: the jobs of the projects a user belongs to (see `ami.main.access`)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from ami.jobs.models import Job
from ami.main.access import visible_projects


def visible_jobs(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(project__in=visible_projects(user))
