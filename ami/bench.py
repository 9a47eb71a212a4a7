"""`ami bench SUITE`: benchmarks that print figures (never timed assertions in tests).

Each suite starts the servers (embedded unless their URLs are set) and migrates first.
"""

from __future__ import annotations

from ami.cli import run_on_servers

# suite -> the Django management command that runs it
SUITES = {
    "logs": "bench_logs",  # job log write backends, 8 writer processes on one job
    "results": "bench_results",  # result tasks saved per second, zero inference delay
    "api": "bench_api",  # log read path on a job with a million lines
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUITES:
        print(f"usage: ami bench {{{','.join(SUITES)}}} [OPTIONS]  (OPTIONS: --help)")
        return 2
    return run_on_servers(SUITES[argv[0]], argv[1:])
