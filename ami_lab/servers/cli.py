"""`ami services up|down|status|env`."""

from __future__ import annotations

import argparse
import shlex

from rich.console import Console
from rich.table import Table

from ami_lab import servers
from ami_lab.servers.nats import CLUSTER_SIZE


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ami services", description="Embedded PostgreSQL, NATS and Redis."
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "--purge", action="store_true", help="with down: also delete the servers' data"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help=f"with up: NATS as a {CLUSTER_SIZE}-node JetStream cluster (docs/operations.md)",
    )
    args = parser.parse_args(argv)
    if args.action == "down":
        return _down(purge=args.purge)
    if args.action == "up":
        return _up(cluster=args.cluster)
    return {"status": _status, "env": _env}[args.action]()


def _up(*, cluster: bool) -> int:
    try:
        if cluster:
            servers.use_nats_cluster(CLUSTER_SIZE)
        servers.up()
    except servers.ServiceError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        return 1
    return _status()


def _down(*, purge: bool) -> int:
    stopped = servers.down(purge=purge)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    if purge:
        print("data deleted")
    return 0


def _status() -> int:
    table = Table("server", "where", "url", "pid", "healthy")
    report = servers.status()
    for item in report:
        table.add_row(
            item.name,
            "external" if item.external else "embedded",
            item.url or "-",
            str(item.pid or "-"),
            "[green]yes[/green]" if item.healthy else "[red]no[/red]",
        )
    Console().print(table)
    return 0 if all(item.healthy for item in report) else 1


def _env() -> int:
    for name, value in servers.dev_environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
