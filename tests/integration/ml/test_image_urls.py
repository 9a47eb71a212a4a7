"""Signed image URLs: the image for its own link, for as long as the link is valid; else 404."""

from __future__ import annotations

import time

import pytest
from django.core import signing

from ami.main.models import SourceImage
from ami.ml.api.images import signed_image_path

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture
def stored_image(project, settings, tmp_path) -> SourceImage:
    settings.MEDIA_ROOT = str(tmp_path)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PNG)
    return SourceImage.objects.create(project=project, path="img/a.png")


def test_the_link_serves_its_image_to_anyone_holding_it(client, stored_image):
    response = client.get(signed_image_path(stored_image.pk))
    assert response.status_code == 200
    assert response.content == PNG and response["Content-Type"] == "image/png"


def test_a_tampered_signature_is_refused(client, stored_image):
    path = signed_image_path(stored_image.pk)
    tampered = path[:-1] + ("A" if path[-1] != "A" else "B")
    assert client.get(tampered).status_code == 404


def test_a_signature_does_not_open_another_image(client, stored_image, project):
    other = SourceImage.objects.create(project=project, path="img/b.png")
    signature = signed_image_path(stored_image.pk).rsplit(":", 1)[1]
    forged = signed_image_path(other.pk).rsplit(":", 1)[0] + ":" + signature
    assert client.get(forged).status_code == 404


def test_a_link_expires_after_its_max_age(client, stored_image, settings, monkeypatch):
    path = signed_image_path(stored_image.pk)
    later = time.time() + settings.IMAGE_URL_MAX_AGE + 5
    monkeypatch.setattr(signing.time, "time", lambda: later)
    assert client.get(path).status_code == 404


def test_a_link_signed_with_another_secret_key_is_refused(client, stored_image, settings):
    path = signed_image_path(stored_image.pk)
    settings.SECRET_KEY = "another-deployment-" + "x" * 40
    assert client.get(path).status_code == 404


def test_a_path_outside_the_media_folder_is_never_served(client, stored_image):
    escaping = SourceImage.objects.create(project=stored_image.project, path="../../etc/passwd")
    assert client.get(signed_image_path(escaping.pk)).status_code == 404
