"""Migration ml 0005 keeps what services saw before scoping: every project at upgrade time."""

from __future__ import annotations

import pytest

from tests.support.migrations import latest, migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("ml", "0004_protocol_v2")


def test_existing_services_keep_every_project(project):
    old = migrate(BEFORE)
    try:
        old.get_model("ml", "ProcessingService").objects.create(name="old box", key_hash="x" * 64)
    finally:
        new = migrate(latest("ml"))
    service = new.get_model("ml", "ProcessingService").objects.get(name="old box")
    assert list(service.projects.values_list("pk", flat=True)) == [project.pk]
