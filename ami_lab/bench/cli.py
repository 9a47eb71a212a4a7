"""`ami bench SUITE`: benchmarks that print figures (never timed assertions in tests).

Each suite starts the servers (embedded unless their URLs are set) and migrates first.
"""

from __future__ import annotations

from ami_lab.commands import run_on_servers

# suite -> the command that runs it
SUITES = {
    "logs": "ami_lab.bench.logs.command:Command",  # log write backends, 8 writer processes
    "results": "ami_lab.bench.results:Command",  # result tasks saved per second
    "api": "ami_lab.bench.api_command:Command",  # log read path on a job with a million lines
    "batch": "ami_lab.bench.batch:Command",  # server memory while it takes a 150 MB result post
    "convoy": "ami_lab.bench.convoy:Command",  # lock waits of 125 concurrent result tasks
    "partitions": "ami_lab.bench.partitions:Command",  # JobLog pages and retention at 1M and 10M
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUITES:
        print(f"usage: ami bench {{{','.join(SUITES)}}} [OPTIONS]  (OPTIONS: --help)")
        return 2
    return run_on_servers(SUITES[argv[0]], argv[1:], prog=f"bench {argv[0]}")
