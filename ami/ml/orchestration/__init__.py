"""Running a pipeline job: NATS task queue, dispatch, result saving and finishing."""
