from django.urls import path

from ami.jobs.api.download import log_download
from ami.jobs.api.search import LogHistogramView, LogSearchView
from ami.jobs.api.stream import log_stream

# The streamed log endpoints are plain async Django views (DRF views are synchronous).
urlpatterns = [
    path("jobs/<int:pk>/logs/stream", log_stream, name="job-logs-stream"),
    path("jobs/<int:pk>/logs/download", log_download, name="job-logs-download"),
    path("logs", LogSearchView.as_view(), name="log-search"),
    path("logs/histogram", LogHistogramView.as_view(), name="log-histogram"),
]
