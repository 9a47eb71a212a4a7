"""The Celery application: queues `jobs` (start, collect, finalize) and `ml_results`."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ami.settings")

app = Celery("ami")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("jobs"), Queue("ml_results"))
app.autodiscover_tasks()
