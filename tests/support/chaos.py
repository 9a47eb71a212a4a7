"""Losing a host at once, as load test faults: a NATS node, or a whole Celery worker group.

Each records what it struck (`ami_lab.loadtest.faults.Fault.events`); a killed process is
recorded as `pid N`, which the load test's line accounting reads to tell a line lost in
flight at the SIGKILL from a line lost otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal

from ami_lab.loadtest.faults import Fault
from ami_lab.servers.nats import NatsNode
from ami_lab.supervisor import Child, group_members


class NodeKill(Fault):
    """SIGKILL of one NATS node (its host lost)."""

    name = "kill_nats_node"

    def strike_node(self, node: NatsNode) -> None:
        node.kill()
        self.record(f"node {node.name}")


class GroupKill(Fault):
    """SIGKILL of a supervised child's whole process group (a Celery worker and its pool)."""

    name = "kill_worker_group"

    def strike_group(self, child: Child) -> list[int]:
        """Kill the group; return the pids it had."""
        pids = group_members(child.pgid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pgid, signal.SIGKILL)
        for pid in pids:
            self.record(f"pid {pid}")
        return pids
