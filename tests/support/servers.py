"""The embedded servers as tests see them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

URL_VARS = ("DATABASE_URL", "NATS_URL", "REDIS_URL")


@contextlib.contextmanager
def in_run_dir(run_dir: Path) -> Iterator[None]:
    """Point the embedded servers' code in this process at another checkout's run folder."""
    previous = os.environ.get("AMI_RUN_DIR")
    os.environ["AMI_RUN_DIR"] = str(run_dir)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AMI_RUN_DIR"]
        else:
            os.environ["AMI_RUN_DIR"] = previous
