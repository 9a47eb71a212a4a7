"""Server-rendered pages: the jobs list and one job's live page (progress and log)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from ami.jobs.access import visible_jobs
from ami.jobs.api.log_query import MAX_QUERY_LENGTH
from ami.jobs.models import JobLogBudget
from ami.jobs.states import StageKey
from ami.main.access import visible_projects

JOBS_PER_PAGE = 100
LOG_LEVELS = [("", "all levels"), ("10", "debug+"), ("20", "info+"), ("30", "warning+"),
              ("40", "error+"), ("50", "critical")]  # fmt: skip


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = visible_jobs(request.user).select_related("project", "pipeline").order_by("-id")
    return render(
        request, "jobs/job_list.html", {"jobs": jobs.prefetch_related("stages")[:JOBS_PER_PAGE]}
    )


@login_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(visible_jobs(request.user).select_related("project", "pipeline"), pk=pk)
    stages = list(job.stages.order_by("id"))
    context = {
        "job": job,
        "stages": stages,
        "process": next((stage for stage in stages if stage.key == StageKey.PROCESS), None),
        "levels": LOG_LEVELS,
        "max_query": MAX_QUERY_LENGTH,
        "elided_lines": JobLogBudget.elided(job.pk)[0],
    }
    return render(request, "jobs/job_detail.html", context)


@login_required
def log_search(request: HttpRequest) -> HttpResponse:
    """Search the logs of every job you can see; the page calls /api/logs and its histogram."""
    context = {
        "projects": visible_projects(request.user).order_by("name"),
        "levels": LOG_LEVELS,
        "max_query": MAX_QUERY_LENGTH,
    }
    return render(request, "jobs/log_search.html", context)
