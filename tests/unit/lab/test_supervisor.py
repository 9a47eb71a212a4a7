"""The demo's supervisor stops whole process groups, stubborn ones included."""

from __future__ import annotations

from ami_lab.supervisor import Supervisor, group_members
from tests.support.polling import wait_until


def test_stop_ends_children_and_their_children(tmp_path):
    supervisor = Supervisor(tmp_path, {"PATH": "/usr/bin:/bin"})
    polite = supervisor.start("polite", ["sh", "-c", "sleep 300 & sleep 300 & wait"])
    stubborn = supervisor.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    wait_until(lambda: len(group_members(polite.pgid)) == 3, "polite's children", 10, 0.05)
    supervisor.stop(grace=1.0)
    assert group_members(polite.pgid) == [] and group_members(stubborn.pgid) == []
    assert supervisor.children == []
