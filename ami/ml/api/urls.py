"""Processing-service routes, included under `api/` by `ami.urls` (trailing slash optional)."""

from django.urls import path

from ami.ml.api.images import image_view
from ami.ml.api.processing import PostResultsView, ReserveTasksView

urlpatterns = [
    path("jobs/<int:job_id>/tasks", ReserveTasksView.as_view(), name="ml-reserve-tasks"),
    path("jobs/<int:job_id>/tasks/", ReserveTasksView.as_view()),
    path("jobs/<int:job_id>/result", PostResultsView.as_view(), name="ml-post-results"),
    path("jobs/<int:job_id>/result/", PostResultsView.as_view()),
    path("ml/images/<str:signed>", image_view, name="ml-image"),
]
