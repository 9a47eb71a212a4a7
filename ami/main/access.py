"""Who sees what: a user sees the projects they belong to, and what those projects hold.

Every API view starts from these querysets, so another project's object is a 404, never a
403 that would confirm it exists. The jobs' counterpart is `ami.jobs.access.visible_jobs`.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from rest_framework.authentication import BasicAuthentication, SessionAuthentication

from ami.main.models import Project, SourceImage

# Explicit on every user-facing view, so a token scheme added for processing services in
# the global defaults is never accepted here.
USER_AUTHENTICATION = [SessionAuthentication, BasicAuthentication]


def visible_projects(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(members=user)


def visible_images(user: AbstractBaseUser | AnonymousUser) -> QuerySet[SourceImage]:
    return SourceImage.objects.filter(project__in=visible_projects(user))
