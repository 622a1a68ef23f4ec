"""The run/deploy files hang together: compose services, Makefile targets, CI entry point.

Pure file checks: no database, no Docker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker", "beat", "hl7")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def makefile() -> str:
    return (REPO / "Makefile").read_text()


def test_compose_has_every_service_with_an_image_or_build(compose):
    services = compose["services"]
    for name in ("postgres", "redis", *APP_SERVICES):
        assert name in services, f"docker-compose.yml lacks service {name!r}"
        assert services[name].get("image") or services[name].get("build"), f"{name} has no image or build"


def test_compose_servers_are_pinned_and_checked(compose):
    services = compose["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_web_has_a_healthcheck_on_healthz(compose):
    web = compose["services"]["web"]
    test = web["healthcheck"]["test"]
    assert test
    probe = " ".join(test) if isinstance(test, list) else test
    if "scripts/healthcheck.py" in probe:
        assert "/healthz" in (REPO / "scripts" / "healthcheck.py").read_text()
    else:
        assert "/healthz" in probe


def test_app_services_wait_for_a_successful_migration(compose):
    services = compose["services"]
    for name in ("web", "worker", "beat", "hl7"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    migrate = services["migrate"]
    assert migrate["environment"]["DATABASE_LOGIN"] == "owner"
    assert "db_bootstrap" in " ".join(migrate["command"])
    assert migrate.get("restart") == "no"


def test_app_services_run_in_production_with_required_secrets(compose):
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["HEALTHCRM_ENV"] == "production", name
        for secret in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "BLIND_INDEX_KEY", "APP_DATABASE_PASSWORD"):
            assert f"${{{secret}:?" in env[secret], f"{name}: {secret} must be required (${{{secret}:?...}})"
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"], name
        # Outreach for real: the provider (never the development sink) and the public address its
        # webhooks are signed with, required like the secrets.
        assert "${PUBLIC_BASE_URL:?" in env["PUBLIC_BASE_URL"], name
        assert env["TWILIO_ENABLED"].startswith("${TWILIO_ENABLED:-true}"), name
        assert env["SMS_BACKEND"] == "${SMS_BACKEND:-twilio}", name
        assert "TWILIO_API_URL" in env, name


def test_worker_listens_on_every_queue(compose):
    command = " ".join(compose["services"]["worker"]["command"])
    assert "default,outreach,integrations" in command


def test_makefile_has_the_targets(makefile):
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile, flags=re.MULTILINE))
    for target in ("run", "test", "lint", "migrate", "seed", "shell", "services-stop", "clean"):
        assert target in targets, f"Makefile lacks target {target!r}"


def test_ci_run_is_executable_and_calls_make_test():
    ci_run = REPO / ".ci" / "run"
    assert ci_run.is_file()
    assert os.access(ci_run, os.X_OK), ".ci/run must be executable"
    text = ci_run.read_text()
    assert text.startswith("#!")
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*make test\b", text, flags=re.MULTILINE)


def test_dockerfile_runs_gunicorn_unprivileged_without_the_local_extra():
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("FROM python:3.11-slim") or "\nFROM python:3.11-slim" in text
    assert "collectstatic" in text
    assert "healthcrm.wsgi" in text
    assert re.search(r"^USER (?!root\b)\S+", text, flags=re.MULTILINE)
    assert "[local" not in text and ",local" not in text
