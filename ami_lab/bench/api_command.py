from django.core.management.base import BaseCommand

from ami_lab.bench.api import print_figures, run


class Command(BaseCommand):
    help = "Benchmark the log read path (pages, download, live tail) on a job with many lines."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lines", type=int, default=1_000_000, help="log lines in the job")
        parser.add_argument(
            "--live-only",
            action="store_true",
            help="only the live tail figures (commit to SSE client and browser, idle streams)",
        )

    def handle(self, *args, lines: int, live_only: bool, **options) -> None:
        print_figures(run(lines, live_only))
