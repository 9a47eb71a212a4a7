"""The embedded NATS cluster (`ami services up --cluster`): three real nodes, each on its own
ports and store folder, one JetStream cluster; a killed node comes back where it was; stopping
leaves no process behind."""

from __future__ import annotations

import asyncio

import nats

from ami.ml.orchestration.nats import server_urls
from ami_lab import servers
from ami_lab.servers.base import pid_alive
from ami_lab.servers.nats import CLUSTER_ENV, NatsCluster, NatsServer
from tests.support.polling import wait_until


async def cluster_name(url: str) -> str:
    """The cluster the server at `url` belongs to, once its JetStream answers."""
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        await nc.jetstream().account_info()
        return nc._server_info.get("cluster", "")  # from the INFO the server sent
    finally:
        await nc.close()


def answers(cluster: NatsCluster, url: str) -> bool:
    """True once JetStream answers through `url`; while the killed node's socket is being torn
    down a connection to it can also be reset (an OSError), which is "not yet" too."""
    try:
        cluster.ping(url)
    except (nats.errors.Error, TimeoutError, OSError):
        return False
    return True


def test_cluster_lifecycle(tmp_path):
    cluster = NatsCluster(3, root=tmp_path)
    try:
        state = cluster.start()
        urls = server_urls(state.url)
        nodes = cluster.nodes
        assert len(urls) == 3 and urls == [node.read_state().url for node in nodes]
        assert len({node.route_port for node in nodes} | {node.client_port for node in nodes}) == 6
        assert [node.name for node in nodes] == ["nats-1", "nats-2", "nats-3"]
        names = {asyncio.run(cluster_name(url)) for url in urls}
        assert len(names) == 1 and names.pop().startswith("ami-")  # its own name: see ClusterPorts
        assert all((node.home / "jetstream").is_dir() for node in nodes)

        first = nodes[0]
        old_pid = first.read_state().pid
        first.kill()
        # Two of three nodes: JetStream answers again, after an election if it led.
        wait_until(lambda: answers(cluster, state.url), "the two other nodes to answer")
        assert not cluster.healthy()
        first.revive()
        assert first.read_state().port == first.client_port and first.read_state().pid != old_pid
        assert cluster.healthy() and cluster.start().url == state.url  # reused as it is

        pids = [node.read_state().pid for node in nodes]
        cluster.stop()
        assert cluster.read_state() is None
        assert cluster.start().url == state.url  # the whole cluster again, on its ports
        pids += [node.read_state().pid for node in nodes]
    finally:
        cluster.purge()
    assert not any(pid_alive(pid) for pid in pids)
    assert cluster.read_state() is None


def test_the_switch_or_a_running_cluster_makes_nats_a_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("AMI_RUN_DIR", str(tmp_path))
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    assert isinstance(servers._nats(), NatsServer)
    monkeypatch.setenv(CLUSTER_ENV, "3")
    assert isinstance(servers._nats(), NatsCluster)
    monkeypatch.delenv(CLUSTER_ENV)
    (tmp_path / "nats-cluster.json").write_text('{"client": [1, 2, 3], "route": [4, 5, 6]}')
    assert isinstance(servers._nats(), NatsServer)  # ports of a stopped cluster: not running
    (tmp_path / "nats-1.json").write_text('{"pid": 1, "port": 1, "url": "nats://127.0.0.1:1"}')
    assert isinstance(servers._nats(), NatsCluster)  # so `ami services down` stops it
