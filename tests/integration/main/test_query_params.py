"""Every query parameter of the projects, images and pipelines endpoints is validated.

A malformed value is a 400 naming the parameter, never a 500 and never silently ignored;
path ids that are no id are a 404.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ami.ml.models import ProcessingService

pytestmark = pytest.mark.django_db

HUGE = "9" * 30
MALFORMED = {
    "superscript-two": "%C2%B2",
    "nul": "%00",
    "negative": "-1",
    "huge": HUGE,
    "float": "1.5",
    "text": "abc",
    "empty-ish": "%20",
    "arabic-digits": "%D9%A1",
}
LIST_PARAMETERS = {
    "/api/projects/": ["limit", "offset"],
    "/api/images/": ["limit", "offset", "project"],
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize(
    ("url", "name"),
    [(url, name) for url, names in LIST_PARAMETERS.items() for name in names],
)
def test_malformed_parameter_is_a_400_naming_it(member_client, images, url, name, value):  # noqa: F811
    response = member_client.get(f"{url}?{name}={value}")
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert name in response.json()


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_limit_out_of_range_is_a_400(member_client, images, limit):  # noqa: F811
    response = member_client.get(f"/api/images/?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()


def test_well_formed_parameters_still_work(member_client, project, images):  # noqa: F811
    body = member_client.get(f"/api/images/?project={project.pk}&limit=2&offset=1").json()
    assert [image["id"] for image in body["results"]] == [image.pk for image in images[1:3]]
    assert member_client.get("/api/images/?project=").status_code == 200  # empty: no filter


@pytest.mark.parametrize("url", ["/api/projects/", "/api/images/", "/api/pipelines/"])
@pytest.mark.parametrize("pk", ["abc", HUGE, "%C2%B2", "-1"])
def test_detail_with_a_malformed_id_is_a_404(member_client, images, pipeline, url, pk):  # noqa: F811
    assert member_client.get(f"{url}{pk}/").status_code == 404


@pytest.mark.parametrize("path", ["tasks", "result"])
def test_processing_endpoints_with_a_huge_job_id_are_a_404(path):
    _, key = ProcessingService.create_with_key("probe")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = client.post(f"/api/v2/jobs/{HUGE}/{path}/?limit=-1&project=%00", {}, format="json")
    assert response.status_code in (400, 404), response.content[:200]
