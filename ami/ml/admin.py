from django.contrib import admin

from ami.ml.models import Algorithm, Pipeline


@admin.register(Algorithm)
class AlgorithmAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "version", "task_type"]


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    filter_horizontal = ["algorithms"]
