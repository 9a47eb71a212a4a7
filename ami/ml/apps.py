from django.apps import AppConfig

from ami.jobs import runner


class MlConfig(AppConfig):
    name = "ami.ml"
    label = "ml"
    verbose_name = "ML pipelines"

    def ready(self) -> None:
        """Register the ML job's runner, through which `ami.jobs` starts and cancels jobs."""
        # Imported here, not at the top: it imports models, which Django allows only once
        # every app is loaded.
        from ami.ml.runner import MlJobRunner

        runner.register(MlJobRunner())
