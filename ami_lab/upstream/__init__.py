"""Writers that reproduce the upstream platform's job logging, for comparison only.

`in_transaction` (a JobLog backend that INSERTs on the caller's connection, inside its
transaction) and the seed's read-modify-write emit show the failure signatures the product's
backends exist to avoid; the benchmark and the load test run them side by side with those.
"""

IN_TRANSACTION = "in_transaction"
IN_TRANSACTION_BACKEND = "ami_lab.upstream.in_transaction.InTransactionBackend"


def backend_setting(mode: str) -> str:
    """The `JOB_LOG_BACKEND` value that selects a log mode: a product alias, or ours."""
    return IN_TRANSACTION_BACKEND if mode == IN_TRANSACTION else mode
