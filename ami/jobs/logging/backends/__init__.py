"""Job log write backends, one module each; chosen by the `JOB_LOG_BACKEND` setting."""

BACKEND_ALIASES = {
    "sync": "ami.jobs.logging.backends.sync.SyncBackend",
    "buffered": "ami.jobs.logging.backends.buffered.BufferedBackend",
    "legacy_json": "ami.jobs.logging.backends.legacy_json.LegacyJsonBackend",
    "memory": "ami.jobs.logging.backends.memory.MemoryBackend",
}
