"""What a processing service sees: the projects it belongs to, and their jobs.

The services' counterpart of `ami.main.access` and `ami.jobs.access`: every
processing-service view starts from these querysets, so another project's job or project
is a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from django.db.models import QuerySet

from ami.jobs.models import Job
from ami.main.models import Project
from ami.ml.models import ProcessingService


def projects_for_service(service: ProcessingService) -> QuerySet[Project]:
    if not service.is_active:
        return Project.objects.none()
    return Project.objects.filter(processing_services=service)


def jobs_for_service(service: ProcessingService) -> QuerySet[Job]:
    return Job.objects.filter(project__in=projects_for_service(service))
