from django.contrib import admin

from ami.ml.models import Algorithm, Pipeline, ProcessingService


@admin.register(Algorithm)
class AlgorithmAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "version", "task_type"]


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    filter_horizontal = ["algorithms"]


@admin.register(ProcessingService)
class ProcessingServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "created_at", "last_seen_at"]
    readonly_fields = ["token_hash", "created_at", "last_seen_at"]
