"""schemathesis over the published OpenAPI schema: no generated request answers >= 500.

CI-sized and reproducible (few examples per operation, derandomized). The requests come
from a member of a project whose job has log lines, and every path id is set to that
job, project, image or pipeline, so the fuzzed query strings and bodies reach the log
read path instead of stopping at 403/404.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, settings

from ami.jobs.lifecycle import create_job
from ami.jobs.locking import transition
from ami.jobs.states import JobStatus
from ami.ml.models import ProcessingService
from tests.support.api_routes import schema as published_schema
from tests.support.logs import add_lines

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

MAX_EXAMPLES = 15  # per operation: about a minute in all on 2 shared cores
schema = schemathesis.openapi.from_dict(published_schema())
schema.app = get_wsgi_application()


@pytest.fixture
def fuzz_target(project, pipeline, images, member) -> Iterator[dict]:
    """A final job with log lines in the member's project; ids by resource, and a cookie."""
    job = create_job(project, pipeline, "fuzzed job", {"limit": 5})
    add_lines(job, 30)
    transition(job.pk, JobStatus.STARTED)
    transition(job.pk, JobStatus.SUCCESS)  # final: the log stream ends instead of waiting
    client = Client()
    client.force_login(member)
    ids = {"jobs": job.pk, "projects": project.pk, "images": images[0].pk}
    ids["pipelines"] = pipeline.pk
    service, key = ProcessingService.create_with_key("fuzzing service")  # for /api/v2/
    service.projects.add(project)  # so the fuzzed ids reach past the scope check
    yield {
        "ids": ids,
        "cookies": {"sessionid": client.cookies["sessionid"].value},
        "headers": {"Authorization": f"Api-Key {key}"},  # user endpoints ignore it
    }
    # The log views are async: under WSGI each request runs them on a new event loop
    # whose executor threads open their own connections; collect them so they close
    # (else the test database cannot be dropped at the end of the session).
    gc.collect()


def aim_at_real_objects(case, ids: dict) -> None:
    """Point each path id at the object of the resource named before it in the path."""
    parts = [part for part in case.path.strip("/").split("/") if part != "v2"]
    resource = parts[1]
    for name in case.path_parameters or {}:
        if name in ("id", "pk", "job_id", "project_id"):
            case.path_parameters[name] = ids.get(resource, ids["jobs"])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_answers_a_server_error(case, fuzz_target, broker):  # noqa: F811
    aim_at_real_objects(case, fuzz_target["ids"])
    response = case.call(cookies=fuzz_target["cookies"], headers=fuzz_target["headers"])
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}: "
        f"{response.status_code}"
    )
