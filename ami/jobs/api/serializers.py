"""Job serializers: the list shape (no logs) and the detail shape (stages, counters, logs)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ami.jobs.models import Job, JobStage
from ami.jobs.runner import runner
from ami.jobs.states import StageKey
from ami.main.models import Project


class JobStageSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobStage
        fields = [
            "key",
            "status",
            "progress",
            "total",
            "processed",
            "failed",
            "detections",
            "classifications",
            "updated_at",
        ]


class JobImagesSerializer(serializers.Serializer):
    """The job's images at a glance, from its `process` stage."""

    total = serializers.IntegerField(help_text="Images the job collected")
    processed = serializers.IntegerField(help_text="Images with a saved result")
    failed = serializers.IntegerField(
        help_text="Images whose processing failed; more than 0 in a finished job makes it "
        "COMPLETED_WITH_ERRORS (or FAILURE if every image failed)"
    )


class JobSerializer(serializers.ModelSerializer):
    """A job without its log: what the list returns (stages come from one prefetch)."""

    stages = JobStageSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()
    is_final = serializers.BooleanField(read_only=True)
    images = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "project",
            "pipeline",
            "status",
            "is_final",
            "progress",
            "images",
            "params",
            "failure_reason",
            "created_at",
            "started_at",
            "finished_at",
            "last_heartbeat_at",
            "stages",
        ]
        read_only_fields = fields

    def get_progress(self, job: Job) -> float:
        """Overall progress: the mean of the stages' progress."""
        stages = list(job.stages.all())
        return sum(stage.progress for stage in stages) / len(stages) if stages else 0.0

    @extend_schema_field(JobImagesSerializer)
    def get_images(self, job: Job) -> dict[str, int]:
        """`{total, processed, failed}` of the process stage (zeros before it exists)."""
        # Read from the prefetched stages: no query per job in the list.
        process = next((s for s in job.stages.all() if s.key == StageKey.PROCESS), None)
        if process is None:
            return {"total": 0, "processed": 0, "failed": 0}
        return {"total": process.total, "processed": process.processed, "failed": process.failed}


class LegacyLogsSerializer(serializers.Serializer):
    stdout = serializers.ListField(child=serializers.CharField())
    stderr = serializers.ListField(child=serializers.CharField())


class JobDetailSerializer(JobSerializer):
    """A job with `logs: {stdout, stderr}` for old clients (`logs_limit` newest lines)."""

    logs = serializers.SerializerMethodField()
    processing_services = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "processing_services", "logs"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_processing_services(self, job: Job) -> list[str]:
        return runner().processing_services(job.pk)

    @extend_schema_field(LegacyLogsSerializer)
    def get_logs(self, job: Job) -> dict[str, list[str]]:
        return job.recent_logs(self.context["logs_limit"])


class JobCreateSerializer(serializers.Serializer):
    """What a user gives to create a job; `project` must be one of theirs."""

    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    # The model `Job.pipeline` points at (ml.Pipeline): ami.jobs never imports ami.ml.
    pipeline = serializers.PrimaryKeyRelatedField(
        queryset=Job.pipeline.field.related_model.objects.all(), allow_null=True, required=False
    )
    name = serializers.CharField(max_length=200)
    params = serializers.DictField(required=False, default=dict)
    start = serializers.BooleanField(
        required=False, default=False, help_text="Queue the job right away"
    )

    def __init__(self, *args, projects=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if projects is not None:
            self.fields["project"].queryset = projects


class LogLineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cursor = serializers.CharField(help_text="This line's position: pass as `after` or `before`")
    created_at = serializers.DateTimeField()
    level = serializers.IntegerField()
    level_name = serializers.CharField()
    message = serializers.CharField()
    context = serializers.DictField()


class LogPageSerializer(serializers.Serializer):
    results = LogLineSerializer(many=True)
    horizon = serializers.CharField(help_text="A cursor: lines after it are not served yet")
    newer_cursor = serializers.CharField(help_text="Pass as `after` for the next lines")
    older_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `before` for older lines; null when none are left"
    )
    partial = serializers.BooleanField(
        help_text="A filtered scan stopped before the page filled (it reads at most 75,000 "
        "candidate lines): more matches may lie past the cursor in the page's direction"
    )
    newer = serializers.CharField(help_text="URL of the next (newer) page")
    older = serializers.CharField(allow_null=True, help_text="URL of the older page")
    elided_lines = serializers.IntegerField(
        help_text="Lines of the job left out past its log budget so far (docs/logging.md)"
    )
    elided_bytes = serializers.IntegerField(help_text="Their size in bytes")
