"""Where embedded servers keep their files."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_dir() -> Path:
    """The folder for embedded servers' data, logs and state (`AMI_RUN_DIR` overrides)."""
    return Path(os.environ.get("AMI_RUN_DIR") or PROJECT_ROOT / ".run").resolve()
