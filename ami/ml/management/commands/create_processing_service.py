"""`ami create_processing_service NAME`: print a new API key for a processing service."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from ami.ml.models import ProcessingService


class Command(BaseCommand):
    help = "Create a processing service (or rotate its API key) and print the key once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: object, **options: object) -> None:
        _, key = ProcessingService.create_with_key(str(options["name"]))
        self.stdout.write(key)
