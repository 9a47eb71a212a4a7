from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "ami.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        import ami.celery  # noqa: F401  (registers the Celery app for shared tasks)
