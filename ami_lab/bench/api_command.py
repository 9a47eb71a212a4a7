from django.core.management.base import BaseCommand

from ami_lab.bench.api import print_figures, run


class Command(BaseCommand):
    help = "Benchmark the log read path (pages, download, live tail) on a job with many lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lines", type=int, default=1_000_000, help="log lines in the job")

    def handle(self, *args, lines: int, **options) -> None:
        print_figures(run(lines))
