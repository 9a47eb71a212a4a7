from django.contrib import admin

from ami.main.models import Classification, Detection, Project, SourceImage


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    filter_horizontal = ["members"]


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "path", "width", "height"]
    list_filter = ["project"]


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = ["id", "source_image", "algorithm", "x1", "y1", "x2", "y2", "score"]
    list_select_related = ["source_image", "algorithm"]
    raw_id_fields = ["source_image"]


@admin.register(Classification)
class ClassificationAdmin(admin.ModelAdmin):
    list_display = ["id", "detection", "algorithm", "label", "score"]
    raw_id_fields = ["detection"]
