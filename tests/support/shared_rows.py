"""Rows committed once for a whole module of read-only tests, and deleted at its end.

A transactional test pays for its rows twice: it creates them (a user, a project, a
pipeline, a job...) and then `flush` deletes every table after it, 0.1-0.2 s per test on a
2-core machine. A module of hundreds of parametrized tests that only *read* those rows
(through a real server, which sees committed rows only) can create them once instead:
`committed_rows` opens the database to a module-scoped fixture for the block that creates
them, and at the module's end empties the database as a transactional test's teardown
does, with the same `flush` (tests/support/flush.py).

The tests themselves are then marked `django_db` without `transaction=True`: anything one
writes in this process is rolled back, and no flush runs after each. (Without any mark,
pytest-django would not even set up the test database for a run of that module alone.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import Client

from ami.main.models import Project
from ami.ml.models import Algorithm, Pipeline


@contextlib.contextmanager
def committed_rows(django_db_blocker) -> Iterator[None]:
    """The database, open for the block only; the rows it writes are committed (no test
    transaction is open while a module-scoped fixture is set up).

    In a module-scoped fixture: `try:`, `with committed_rows(django_db_blocker):` create the
    rows, `yield` them, and `finally: flush_databases(django_db_blocker)`."""
    with django_db_blocker.unblock():
        yield


def flush_databases(django_db_blocker) -> None:
    """Empty every (non-mirror) test database, as TransactionTestCase's teardown does."""
    with django_db_blocker.unblock():
        for alias in connections:
            if connections[alias].settings_dict.get("TEST", {}).get("MIRROR"):
                continue
            call_command("flush", verbosity=0, interactive=False, database=alias)


def create_pipeline() -> Pipeline:
    """The test pipeline (a detector and a classifier): the `pipeline` fixture's rows."""
    pipeline = Pipeline.objects.create(slug="test-pipeline", name="Test pipeline")
    pipeline.algorithms.add(
        Algorithm.objects.create(key="detector", name="Detector", task_type="detection"),
        Algorithm.objects.create(key="classifier", name="Classifier", task_type="classification"),
    )
    return pipeline


@dataclass(frozen=True)
class SignedInMember:
    project: Project
    pipeline: Pipeline
    member: Any  # the user model
    session_cookie: dict[str, str]


def signed_in_member() -> SignedInMember:
    """The rows of the `project`, `pipeline` and `member` fixtures, and the member's session:
    committed with them (inside `committed_rows`), so a request served on another thread's
    connection finds it."""
    project = Project.objects.create(name="Test project")
    pipeline = create_pipeline()
    member = get_user_model().objects.create_user("member", password="pw-member")
    project.members.add(member)
    client = Client()
    client.force_login(member)
    return SignedInMember(
        project, pipeline, member, {"sessionid": client.cookies["sessionid"].value}
    )
