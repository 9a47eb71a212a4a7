from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ami.ml"
    label = "ml"
    verbose_name = "ML pipelines"
