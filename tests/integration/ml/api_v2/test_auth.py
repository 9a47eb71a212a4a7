"""Contract: who may call the processing-service protocol, with which header."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from ami.ml.models import ProcessingService
from tests.support.ml import service_client

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = [
    ("get", "/api/v2/projects/"),
    ("get", "/api/v2/jobs"),
    ("post", "/api/v2/jobs/1/tasks/"),
    ("post", "/api/v2/jobs/1/result/"),
    ("post", "/api/v2/projects/1/pipelines/"),
]


@pytest.mark.parametrize("keyword", ["Api-Key", "Token", "api-key"])
def test_both_header_forms_are_accepted(keyword):
    client = service_client(keyword=keyword)
    assert client.get("/api/v2/projects/").status_code == 200


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_no_key_unknown_key_and_user_sessions_are_refused(method, url, member_client):
    assert getattr(APIClient(), method)(url).status_code == 401
    unknown = APIClient()
    unknown.credentials(HTTP_AUTHORIZATION="Api-Key not-a-key")
    response = getattr(unknown, method)(url)
    assert response.status_code == 401
    assert response.json()["detail"] == "Unknown processing-service API key"
    assert response["WWW-Authenticate"].startswith("Api-Key")
    assert getattr(member_client, method)(url).status_code in (401, 403)


def test_a_revoked_key_is_a_401_that_says_so():
    client = service_client("old box")
    ProcessingService.objects.filter(name="old box").update(is_active=False)
    response = client.get("/api/v2/jobs")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_new_key_replaces_the_old_one():
    old = service_client("rotated box")
    new = service_client("rotated box")
    assert old.get("/api/v2/jobs").status_code == 401
    assert new.get("/api/v2/jobs").status_code == 200


def test_the_key_is_stored_hashed():
    service, key = ProcessingService.create_with_key("hashed")
    assert key not in service.key_hash and len(service.key_hash) == 64
