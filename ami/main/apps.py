from django.apps import AppConfig


class MainConfig(AppConfig):
    name = "ami.main"
    label = "main"
    verbose_name = "Projects and captures"
