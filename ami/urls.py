from django.contrib import admin
from django.urls import include, path

from ami.ml.api.urls import v2_urlpatterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v2/", include(v2_urlpatterns)),  # processing-service protocol (ami.ml)
    path("api/", include("ami.ml.api.urls")),  # signed image downloads (ami.ml)
    path("api/", include("ami.api_urls")),
    path("", include("ami.jobs.urls")),
]
