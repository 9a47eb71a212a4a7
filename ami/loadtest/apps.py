from django.apps import AppConfig


class LoadtestConfig(AppConfig):
    name = "ami.loadtest"
    label = "loadtest"
    verbose_name = "Load test"
