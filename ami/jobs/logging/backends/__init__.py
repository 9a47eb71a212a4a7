"""Job log write backends, one module each; chosen by `JOB_LOGS["BACKEND"]` (a short name here)."""

BACKEND_ALIASES = {
    "sync": "ami.jobs.logging.backends.sync.SyncBackend",
    "buffered": "ami.jobs.logging.backends.buffered.BufferedBackend",
    "redis": "ami.jobs.logging.backends.redis.RedisBackend",
    "legacy_json": "ami.jobs.logging.backends.legacy_json.LegacyJsonBackend",
    "memory": "ami.jobs.logging.backends.memory.MemoryBackend",
}
