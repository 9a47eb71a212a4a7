"""Progress updater process: locks the job row through `lock_job` and updates it in a loop.

`python -m ami_lab.bench.logs.updater --job 7 --stop-file PATH --max-seconds 60`
runs until the stop file exists (or the time is up) and prints how many updates it made.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import django


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", type=int, required=True)
    parser.add_argument("--stop-file", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")
    django.setup()
    from django.db.models import F
    from django.utils import timezone

    from ami.jobs.locking import lock_job
    from ami.jobs.models import Job, JobStage

    print("ready", flush=True)
    updates, deadline = 0, time.monotonic() + args.max_seconds
    while not args.stop_file.exists() and time.monotonic() < deadline:
        with lock_job(args.job):
            JobStage.objects.filter(job_id=args.job).update(processed=F("processed") + 1)
            Job.objects.filter(pk=args.job).update(last_heartbeat_at=timezone.now())
        updates += 1
        time.sleep(0.002)
    print(updates, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
