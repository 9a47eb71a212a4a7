import logging

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ami.jobs.models import ImageTask, Job, JobLog, JobStage


class JobStageInline(admin.TabularInline):
    model = JobStage
    extra = 0
    readonly_fields = [
        "key",
        "status",
        "total",
        "processed",
        "failed",
        "detections",
        "classifications",
        "progress",
    ]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "pipeline", "status", "created_at", "finished_at"]
    list_filter = ["status", "project"]
    inlines = [JobStageInline]
    exclude = ["legacy_logs"]


class LogLevelFilter(admin.SimpleListFilter):
    """The standard logging levels: a fixed list, not a DISTINCT over the whole log table."""

    title = "level"
    parameter_name = "level"
    LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(str(level), logging.getLevelName(level)) for level in self.LEVELS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None or not value.isdigit():
            return queryset
        return queryset.filter(level=int(value))


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "level", "message", "created_at"]
    list_filter = [LogLevelFilter]
    raw_id_fields = ["job"]
    show_full_result_count = False  # counting a large log table on every page is slow


@admin.register(ImageTask)
class ImageTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "source_image", "state", "updated_at"]
    list_filter = ["state"]
    raw_id_fields = ["job", "source_image"]
