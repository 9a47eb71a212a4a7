from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve
from django.urls import path, re_path
from django.views.generic import RedirectView

from ami.jobs import views
from ami.jobs.login import LoginView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="job-list"), name="home"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("logs/", views.log_search, name="log-search-page"),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

if settings.SERVE_STATIC:
    # The pages need two small files; behind a reverse proxy, collectstatic and serve them there.
    urlpatterns.append(
        re_path(rf"^{settings.STATIC_URL.lstrip('/')}(?P<path>.*)$", serve, {"insecure": True})
    )
