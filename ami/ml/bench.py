"""`ami bench results`: servers up, migrate, then measure the result path (`ami bench_results`)."""

from __future__ import annotations

from ami import services
from ami.cli import run_django

BENCHMARKS = {"results": "bench_results"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: ami bench {{{','.join(BENCHMARKS)}}} [options]  (--help for options)")
        return 2
    try:
        services.up()
    except services.ServiceError as exc:
        print(f"error: {exc}")
        return 1
    run_django(["migrate", "--no-input", "-v", "0"])
    return run_django([BENCHMARKS[argv[0]], *argv[1:]])
