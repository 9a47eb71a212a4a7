"""AMI jobs: an async ML job system."""

# Every process that imports the project (web, CLI, Celery, tests) creates the Celery app,
# so shared tasks are sent through it and its broker: Celery's documented Django layout.
from ami.celery import app as celery_app

__all__ = ("celery_app",)
