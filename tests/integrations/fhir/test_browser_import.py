"""End to end in real Chromium with a real Celery worker: upload a bundle, watch the progress bar,
read the report and open the imported patient."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from healthcrm.tenancy import organization_context
from integrations.fhir.synthetic import synthea_bundle
from patients.models import Patient
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def worker(transactional_db: None, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """`celery worker -Q integrations` on the test database (as the app role) and this run's Redis."""
    test_db = settings.DATABASES["default"]["NAME"]
    owner_url = urlsplit(settings.DATABASE_URL)
    env = dict(
        os.environ,
        DATABASE_URL=urlunsplit(owner_url._replace(path=f"/{test_db}")),
        DATABASE_LOGIN="app",
        REDIS_URL=settings.REDIS_URL,
        DATABASE_CONN_MAX_AGE="0",
    )
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(  # noqa: S603 - our own celery, fixed arguments
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "healthcrm",
            "worker",
            "-Q",
            "integrations",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def test_upload_watch_progress_and_open_the_imported_patient(
    live_server: Any, page: Any, worker: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    north = OrganizationFactory(slug="north", name="North Clinic", require_mfa=False)
    admin = UserFactory(username="admin@north.example")
    MembershipFactory(user=admin, organization=north, role="admin")
    path = tmp_path / "synthea.json"
    path.write_text(json.dumps(synthea_bundle(77, encounters=40)))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(admin.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")

    started = time.monotonic()
    page.goto(base + "/integrations/fhir/import/")
    page.get_by_label("FHIR file").set_input_files(str(path))
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(f"{base}/integrations/fhir/import/*/")
    expect(page.locator("progress#job-progress")).to_be_visible()
    # htmx polls the status until the worker has finished, then the report replaces the bar's polling.
    expect(page.locator("#import-report")).to_be_visible(timeout=30_000)
    assert float(page.locator("progress#job-progress").get_attribute("value")) == 100
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#import-report")).to_contain_text("Observation")
    assert time.monotonic() - started < 30

    page.get_by_role("link", name="Open patient #").first.click()
    with organization_context(north):
        patient = Patient.objects.get()
    page.wait_for_url(f"{base}/patients/{patient.pk}/")
    expect(page.locator("main h1")).to_contain_text(patient.family_name)
    expect(page.locator("main")).to_contain_text("SYN-0000077")
    assert errors == []
