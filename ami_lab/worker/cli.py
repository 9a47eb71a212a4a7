"""`ami worker --url URL --job ID`: run the reference processing service (API key in
`AMI_PROCESSING_KEY` or `--key`); it speaks the protocol under `URL/api/v2`.

SIGTERM or SIGINT stops it gracefully: the batch in hand is finished and its results
posted, then it exits 0. A second signal exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ami_lab.worker.client import ApiError, ProcessingClient
from ami_lab.worker.model import load_model
from ami_lab.worker.runner import Worker, WorkerOptions

logger = logging.getLogger("ami_lab.worker")

DEFAULT_MODEL = "ami_lab.worker.model:BlobModel"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ami worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("AMI_API_URL", "http://127.0.0.1:8000"),
        help="the site (http://host:8000) or the protocol's base (http://host:8000/api/v2)",
    )  # fmt: skip
    parser.add_argument(
        "--key", default=os.environ.get("AMI_PROCESSING_KEY"),
        help="the processing service's API key (default: $AMI_PROCESSING_KEY)",
    )  # fmt: skip
    parser.add_argument("--job", type=int, required=True, help="job id to work on")
    parser.add_argument("--concurrency", type=int, default=2, help="images processed at once")
    parser.add_argument("--batch", type=int, default=8, help="tasks reserved per request")
    parser.add_argument(
        "--inference-delay", type=float, default=0.0, help="extra seconds per image (load tests)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="package.module:ClassName")
    parser.add_argument("--name", default=f"worker-{os.getpid()}")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key (or AMI_PROCESSING_KEY) is required")
    if args.concurrency < 1 or args.batch < 1 or args.inference_delay < 0:
        parser.error("--concurrency and --batch must be >= 1, --inference-delay >= 0")
    return args


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # second signal: leave now
        logger.info("Signal %s: finishing the current batch, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: list[str]) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=os.environ.get("AMI_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s %(levelname)s {args.name}: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    stop = threading.Event()
    install_stop_handlers(stop)
    model = load_model(args.model)
    client = ProcessingClient(args.url, args.key, stop)
    options = WorkerOptions(args.job, args.batch, args.concurrency, args.inference_delay)
    try:
        stats = Worker(client, model, options, stop).run()
    except ApiError as exc:
        logger.error("Stopping: %s", exc)
        return 1
    finally:
        client.close()
    logger.info(
        "Stopped: %d images in %d batches (%d failed)", stats.images, stats.batches, stats.failed
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
