"""Migration ml 0003 records jobs running at upgrade time as published (real schema change)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("ml", "0002_processing_service")


def migrate(ml_target):
    """Migrate the ml app to `ml_target` (every other app at its latest); the models then."""
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "ml"]
    targets = [*others, ml_target]
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def test_running_jobs_are_recorded_as_published_and_others_are_not(project):
    old = migrate(BEFORE)
    try:
        Job, JobStage = old.get_model("jobs", "Job"), old.get_model("jobs", "JobStage")
        running = Job.objects.create(project_id=project.pk, name="running", status="STARTED")
        collecting = Job.objects.create(project_id=project.pk, name="collecting", status="STARTED")
        for job, process_status in ((running, "STARTED"), (collecting, "PENDING")):
            for key in ("collect", "process", "results"):
                status = process_status if key == "process" else "SUCCESS"
                JobStage.objects.create(job=job, key=key, status=status, total=7)
    finally:
        leaf = next(
            n for n in MigrationExecutor(connection).loader.graph.leaf_nodes() if n[0] == "ml"
        )
        new = migrate(leaf)
    TaskPublication = new.get_model("ml", "TaskPublication")
    rows = list(TaskPublication.objects.values_list("job_id", "total", "published"))
    assert rows == [(running.pk, 7, 7)]
