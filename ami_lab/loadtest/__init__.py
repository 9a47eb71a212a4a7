"""`ami loadtest`: reproduce the upstream incident on demand, with faults, per log backend."""
