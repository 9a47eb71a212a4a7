"""The job core reaches the ML job only through the runner `ami.ml` registers."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from ami.jobs import runner
from ami.ml.runner import MlJobRunner


def test_the_ml_app_registers_its_runner_when_django_starts():
    assert isinstance(runner.runner(), MlJobRunner)


def test_without_a_registered_runner_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(runner, "_runner", None)
    with pytest.raises(ImproperlyConfigured, match="ami.ml"):
        runner.runner()


def test_the_last_registration_wins(monkeypatch):
    monkeypatch.setattr(runner, "_runner", None)
    other = MlJobRunner()
    runner.register(MlJobRunner())
    runner.register(other)
    assert runner.runner() is other
