"""Sign-in for the pages, rate-limited per client address.

Each POST counts against the `login` rate (`AMI_LOGIN_RATE`, default 10 a minute per
address), kept in the shared cache so every web process sees the same count. Over it, the
answer is 429 with `Retry-After`, before the password is even checked.
"""

from __future__ import annotations

import math

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle


class LoginRateThrottle(SimpleRateThrottle):
    scope = "login"

    def get_cache_key(self, request: HttpRequest, view: object) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginView(auth_views.LoginView):
    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        throttle = LoginRateThrottle()
        if not throttle.allow_request(request, self):
            response = HttpResponse(
                "Too many sign-in attempts from this address; try again later.\n",
                status=429,
                content_type="text/plain",
            )
            response["Retry-After"] = str(math.ceil(throttle.wait() or 1))
            return response
        return super().post(request, *args, **kwargs)
