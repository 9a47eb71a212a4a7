"""Sign-in attempts are limited per client address, in the cache every web process shares."""

from __future__ import annotations

import random

import pytest
from django.test import Client

from ami.jobs.login import LoginRateThrottle

pytestmark = pytest.mark.django_db


def random_address() -> str:
    # The counters live in the shared Redis for a minute: a fresh address per test run.
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def attempt(client: Client, address: str, password: str = "wrong"):
    return client.post(
        "/accounts/login/", {"username": "nobody", "password": password}, REMOTE_ADDR=address
    )


def test_too_many_attempts_from_one_address_get_429_with_retry_after(client):
    allowed = int(LoginRateThrottle().rate.split("/")[0])
    address = random_address()
    for _ in range(allowed):
        assert attempt(client, address).status_code == 200  # the form again, with its error
    refused = attempt(client, address)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert attempt(client, random_address()).status_code == 200  # another address is not held


def test_a_member_signs_in_under_the_limit(client, django_user_model):
    django_user_model.objects.create_user("member", password="pw-member")
    response = client.post(
        "/accounts/login/",
        {"username": "member", "password": "pw-member", "next": "/jobs/"},
        REMOTE_ADDR=random_address(),
    )
    assert response.status_code == 302 and response["Location"] == "/jobs/"
