from django.apps import AppConfig
from django.db.models.signals import post_save

from ami.jobs.logging.wiring import install as install_job_log


class JobsConfig(AppConfig):
    name = "ami.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        import ami.jobs.checks  # noqa: F401  (registers the system checks)
        from ami.jobs import log_partitions  # loads models: not before the registry is ready

        install_job_log()
        post_save.connect(
            log_partitions.on_job_saved, sender="jobs.Job", dispatch_uid="ami-joblog-partition"
        )
