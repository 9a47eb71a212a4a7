"""Serving capture images to processing services by signed, expiring URL.

A task's `image_url` carries a signature of the image id, so a worker can download the
image with a plain GET and nothing else is reachable with it.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from ami.main.models import SourceImage

SALT = "ami.ml.image"


def signed_image_path(image_id: int) -> str:
    """The URL path of an image, signed (valid for `IMAGE_URL_MAX_AGE` seconds)."""
    return reverse("ml-image", args=[signing.TimestampSigner(salt=SALT).sign(str(image_id))])


def media_file(relative: str) -> Path:
    """Resolve a path under MEDIA_ROOT; refuse anything that escapes it."""
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise Http404("not a media file")
    return path


@require_GET
def image_view(request: HttpRequest, signed: str) -> HttpResponse:
    try:
        signer = signing.TimestampSigner(salt=SALT)
        value = signer.unsign(signed, max_age=settings.IMAGE_URL_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise Http404("image link expired") from exc
    except signing.BadSignature as exc:
        raise Http404("bad image link") from exc
    image = SourceImage.objects.filter(pk=int(value)).only("path").first()
    if image is None:
        raise Http404("no such image")
    path = media_file(image.path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise Http404("image file missing") from exc
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return HttpResponse(data, content_type=content_type)
