from django.contrib import admin

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


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "level", "message", "created_at"]
    list_filter = ["level"]
    raw_id_fields = ["job"]
    show_full_result_count = False  # counting a large log table on every page is slow


@admin.register(ImageTask)
class ImageTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "source_image", "state", "updated_at"]
    list_filter = ["state"]
    raw_id_fields = ["job", "source_image"]
