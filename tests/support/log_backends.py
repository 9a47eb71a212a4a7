"""A job log backend that exists only for tests, loaded by its dotted path."""

from __future__ import annotations

from ami.jobs.logging.backends.memory import MemoryBackend


class StubBackend(MemoryBackend):
    """Stores like `memory`, but is its own class: a test can tell which one was built."""

    name = "stub"
