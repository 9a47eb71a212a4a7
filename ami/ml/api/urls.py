"""Processing-service routes: the protocol under `api/v2/` (`v2_urlpatterns`), and the
signed image downloads under `api/` (`urlpatterns`), both included by `ami.urls`.

Both `/jobs` and `/jobs/` answer, as clients of the protocol ask for either; the schema
lists each route once (the slash-less twins are hidden from it).
"""

from django.urls import path, re_path

from ami.ml.api.images import image_view
from ami.ml.api.job_list import JobListView
from ami.ml.api.processing import PostResultsView, ReserveTasksView
from ami.ml.api.registration import ProjectListView, RegisterPipelinesView
from ami.ml.api.service_logs import ServiceLogsView

v2_urlpatterns = [
    re_path(r"^projects/?$", ProjectListView.as_view(), name="v2-projects"),
    path(
        "projects/<int:project_id>/pipelines/",
        RegisterPipelinesView.as_view(),
        name="v2-register-pipelines",
    ),
    path("projects/<int:project_id>/pipelines", RegisterPipelinesView.as_view(schema=None)),
    re_path(r"^jobs/?$", JobListView.as_view(), name="v2-jobs"),
    path("jobs/<int:job_id>/tasks/", ReserveTasksView.as_view(), name="v2-tasks"),
    path("jobs/<int:job_id>/tasks", ReserveTasksView.as_view(schema=None)),
    path("jobs/<int:job_id>/result/", PostResultsView.as_view(), name="v2-result"),
    path("jobs/<int:job_id>/result", PostResultsView.as_view(schema=None)),
    path("jobs/<int:job_id>/logs/", ServiceLogsView.as_view(), name="v2-logs"),
    path("jobs/<int:job_id>/logs", ServiceLogsView.as_view(schema=None)),
]

urlpatterns = [
    path("ml/images/<str:signed>", image_view, name="ml-image"),
]
