from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("ami.ml.api.urls")),  # processing-service API (ami.ml)
    path("api/", include("ami.api_urls")),
    path("", include("ami.jobs.urls")),
]
