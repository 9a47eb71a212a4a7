"""A 3-node JetStream cluster for the module's tests, and settings that point at it."""

from __future__ import annotations

import pytest

from ami.ml.orchestration import nats
from tests.support.nats_cluster import REPLICAS, heal, running_cluster


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory):
    """The cluster, started once per module; stopped and deleted at its end."""
    with running_cluster(tmp_path_factory.mktemp("nats-cluster")) as cluster:
        yield cluster
        nats.disconnect()  # before the nodes stop: no reconnect attempts left running


@pytest.fixture
def on_cluster(nats_cluster, settings):
    """This process's NATS calls go to the cluster, with R3 streams, for the test; every
    node a test killed runs again before the next."""
    heal(nats_cluster)
    settings.NATS_URL = nats_cluster.read_state().url
    settings.NATS_REPLICAS = REPLICAS
    settings.NATS_NAMESPACE = "cluster_test"
    yield nats_cluster
    heal(nats_cluster)
