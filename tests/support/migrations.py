"""Migrating one app back and forth on the test database, for migration tests."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ami.jobs import log_partitions


def migrate(target: tuple[str, str]) -> Apps:
    """Migrate `target`'s app to it (every other app at its latest); return the models then."""
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != target[0]]
    targets = [*others, target]
    executor.migrate(targets)
    executor.loader.build_graph()
    log_partitions.forget()  # the migration may have dropped partitions or rekeyed jobs
    return executor.loader.project_state(targets).apps


def latest(app: str) -> tuple[str, str]:
    return next(n for n in MigrationExecutor(connection).loader.graph.leaf_nodes() if n[0] == app)
