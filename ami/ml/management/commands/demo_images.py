"""`ami demo_images --count N`: generate (once) and register the demo project's images."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from ami.ml.demo_setup import ensure_images, ensure_pipeline


class Command(BaseCommand):
    help = "Generate the synthetic demo captures and register them in the demo project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=742)

    def handle(self, *args: object, **options: object) -> None:
        project = ensure_images(int(options["count"]))
        ensure_pipeline()
        self.stdout.write(f"{project.images.count()} images in project {project.name!r}")
