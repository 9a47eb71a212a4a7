"""The demo's supervisor stops whole process groups, stubborn ones included."""

from __future__ import annotations

import time

from ami_lab.supervisor import Supervisor, group_members


def test_stop_ends_children_and_their_children(tmp_path):
    supervisor = Supervisor(tmp_path, {"PATH": "/usr/bin:/bin"})
    polite = supervisor.start("polite", ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    stubborn = supervisor.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    deadline = time.monotonic() + 10
    while len(group_members(polite.pgid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(polite.pgid)) == 3
    supervisor.stop(grace=1.0)
    assert group_members(polite.pgid) == [] and group_members(stubborn.pgid) == []
    assert supervisor.children == []
