"""`ami start_job --project NAME|ID --pipeline SLUG [--limit N | --image-ids 1,2,3]`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ami.jobs.lifecycle import NotStartable, check_startable, create_job, start_job
from ami.main.models import Project
from ami.ml.models import Pipeline


class Command(BaseCommand):
    help = "Create an ML job over a project's images and start it; prints the job id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project name or id")
        parser.add_argument("--pipeline", required=True, help="pipeline slug")
        parser.add_argument("--limit", type=int, help="process at most this many images")
        parser.add_argument("--image-ids", help="comma-separated image ids")
        parser.add_argument("--name", help="job name")

    def handle(self, *args: object, **options: object) -> None:
        project = self.project(str(options["project"]))
        try:
            pipeline = Pipeline.objects.get(slug=options["pipeline"])
        except Pipeline.DoesNotExist as exc:
            raise CommandError(f"no pipeline with slug {options['pipeline']!r}") from exc
        params: dict = {}
        if options["limit"] is not None:
            if options["limit"] < 0:
                raise CommandError("--limit must be >= 0")
            params["limit"] = options["limit"]
        if options["image_ids"]:
            try:
                params["image_ids"] = [int(i) for i in str(options["image_ids"]).split(",")]
            except ValueError as exc:
                raise CommandError("--image-ids must be comma-separated integers") from exc
        try:
            check_startable(project.pk, pipeline.pk, params)
        except NotStartable as exc:
            raise CommandError(f"cannot start this job: {exc}") from exc
        name = options["name"] or f"{pipeline.name} on {project.name}"
        job = create_job(project, pipeline, str(name), params)
        start_job(job.pk)
        self.stdout.write(str(job.pk))

    def project(self, value: str) -> Project:
        lookup = {"pk": int(value)} if value.isdigit() else {"name": value}
        try:
            return Project.objects.get(**lookup)
        except Project.DoesNotExist as exc:
            raise CommandError(f"no project {value!r}") from exc
