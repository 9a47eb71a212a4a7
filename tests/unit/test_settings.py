"""The production settings refuse to start unsafe, and pass Django's deployment checks.

Each case runs the `ami` command in a subprocess with a clean environment: the settings are
read once per process.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

# What docs/operations.md tells an operator to set for a TLS deployment.
PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "ami.example.org",
    "AMI_HTTPS": "1",
    "AMI_HSTS_PRELOAD": "1",
    "DATABASE_URL": "postgres://ami@db.example.org:5432/ami",
    "NATS_URL": "nats://nats.example.org:4222",
    "REDIS_URL": "redis://redis.example.org:6379/0",
}
KEEP = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")


def ami(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {name: os.environ[name] for name in KEEP if name in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "ami", *args],
        env={**clean, "AMI_RUN_DIR": "/nonexistent-ami-run", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_secret_key_is_an_error_that_names_it():
    env = {name: value for name, value in PRODUCTION.items() if name != "DJANGO_SECRET_KEY"}
    done = ami("check", env=env)
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in done.stderr


def test_the_documented_production_settings_pass_the_deployment_checks():
    """Django's security checks, django-csp's, and drf-spectacular's (every endpoint and its
    authentication described in the OpenAPI schema): not one issue."""
    done = ami("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout, done.stdout + done.stderr


def test_without_tls_the_deployment_checks_name_what_is_missing():
    env = {name: value for name, value in PRODUCTION.items() if not name.startswith("AMI_H")}
    done = ami("check", "--deploy", env=env)
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in done.stderr
