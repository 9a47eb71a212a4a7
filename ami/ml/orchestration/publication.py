"""The writes to a job's publication record (`TaskPublication`), each a single statement.

They sit in the ML layer with the table they write; the job core (`ami.jobs.locking`) knows
nothing of NATS publishing. Neither takes or waits for a lock on the job row.
"""

from __future__ import annotations

from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from ami.ml.models import TaskPublication


def start_publication(job_id: int, total: int) -> None:
    """Record that `total` tasks are to be published, none yet (a no-op if recorded already).

    Locks: nothing beyond the INSERT of the job's publication row.
    """
    TaskPublication.objects.get_or_create(job_id=job_id, defaults={"total": total})


def record_published(job_id: int, count: int) -> None:
    """Record that NATS confirmed the job's first `count` tasks; the count never goes back.

    Locks: the job's publication row, for this single UPDATE statement only.
    """
    TaskPublication.objects.filter(job_id=job_id).update(
        published=Greatest(F("published"), count), updated_at=timezone.now()
    )
