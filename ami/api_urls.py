"""The REST API under /api/: one router for every user-facing resource, and the schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from ami.jobs.api.views import JobViewSet
from ami.main.api import ProjectViewSet, SourceImageViewSet
from ami.ml.api.pipelines import PipelineViewSet

router = DefaultRouter()
router.trailing_slash = "/?"  # `/api/jobs/1/logs` and `/api/jobs/1/logs/` both work
router.register("projects", ProjectViewSet, basename="project")
router.register("images", SourceImageViewSet, basename="image")
router.register("pipelines", PipelineViewSet, basename="pipeline")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("", include("ami.jobs.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the pages' CSP allows no inline one.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include(router.urls)),
]
