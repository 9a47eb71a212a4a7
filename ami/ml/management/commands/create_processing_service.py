"""`ami create_processing_service NAME [--project P ...] [--rotate] [--revoke-old]`.

Without `--rotate` or `--revoke-old` it creates the service (or gives an existing one a new
key at once: every older key stops working) and prints the key once. `--rotate` issues a
new key while the current one keeps working for `--window` hours (or until `--revoke-old`),
so workers switch keys without downtime. `--project` attaches the service to a project by
name (repeatable); a service sees only its projects' jobs.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ami.main.models import Project
from ami.ml.models import KEY_ROTATION_WINDOW, ProcessingService


class Command(BaseCommand):
    help = (
        "Create a processing service (or give it a new key), attach it to projects, "
        "rotate its key without downtime; print a new key once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--project", action="append", default=[], help="a project's name (repeatable)"
        )
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="issue a new key; the current one keeps working for --window hours",
        )
        parser.add_argument(
            "--window",
            type=float,
            default=KEY_ROTATION_WINDOW.total_seconds() / 3600,
            help="hours the rotated-out key keeps working (default: %(default)s)",
        )
        parser.add_argument(
            "--revoke-old", action="store_true", help="end a rotation: only the newest key works"
        )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        name = str(options["name"])
        projects = [_project(project_name) for project_name in options["project"]]
        rotate, revoke_old = options["rotate"], options["revoke_old"]
        key = None
        if rotate or revoke_old:
            service = ProcessingService.objects.filter(name=name).first()
            if service is None:
                raise CommandError(f"There is no processing service named {name!r}")
            if rotate:
                key = service.rotate_key(timedelta(hours=float(options["window"])))
            if revoke_old:
                service.revoke_previous_key()
        else:
            service, key = ProcessingService.create_with_key(name)
        service.projects.add(*projects)
        if key is not None:
            self.stdout.write(key)


def _project(name: str) -> Project:
    project = Project.objects.filter(name=name).first()
    if project is None:
        raise CommandError(f"There is no project named {name!r}")
    return project
