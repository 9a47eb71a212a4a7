from django.apps import AppConfig

from ami.jobs.logging.wiring import install as install_job_log


class JobsConfig(AppConfig):
    name = "ami.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        import ami.jobs.checks  # noqa: F401  (registers the system checks)

        install_job_log()
