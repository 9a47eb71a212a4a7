from django.contrib import admin, messages

from ami.ml.models import Algorithm, Pipeline, ProcessingService


@admin.register(Algorithm)
class AlgorithmAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "version", "task_type"]


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "version"]
    filter_horizontal = ["algorithms", "projects"]


@admin.register(ProcessingService)
class ProcessingServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "reported_name", "created_at", "last_seen_at"]
    filter_horizontal = ["projects"]  # a service sees only the jobs of these projects
    readonly_fields = [
        "key_hash", "previous_key_hash", "previous_key_expires_at", "created_at",
        "last_seen_at", "reported_name", "client_info", "registered_at",
    ]  # fmt: skip
    actions = ["rotate_api_key", "revoke_previous_key", "new_api_key", "revoke"]

    @admin.action(description="Rotate the API key (shown once; the old key works one more day)")
    def rotate_api_key(self, request, queryset) -> None:
        for service in queryset:
            key = service.rotate_key()
            self.message_user(request, f"API key of {service.name}: {key}", messages.WARNING)

    @admin.action(description="End the rotation: the previous API key stops working")
    def revoke_previous_key(self, request, queryset) -> None:
        for service in queryset:
            service.revoke_previous_key()
        self.message_user(request, f"Revoked the previous key of {queryset.count()} service(s).")

    @admin.action(description="Create a new API key (shown once; every old key stops working)")
    def new_api_key(self, request, queryset) -> None:
        for service in queryset:
            _, key = ProcessingService.create_with_key(service.name)
            self.message_user(request, f"API key of {service.name}: {key}", messages.WARNING)

    @admin.action(description="Revoke the API key")
    def revoke(self, request, queryset) -> None:
        count = queryset.update(is_active=False)
        self.message_user(request, f"Revoked {count} processing service key(s).")

    def save_model(self, request, obj, form, change) -> None:
        key = None if change else obj.set_new_key()  # a service added here gets one now
        super().save_model(request, obj, form, change)
        if key:
            self.message_user(request, f"API key of {obj.name}: {key}", messages.WARNING)
