"""Pulls that real EHRs allow: one pull per connection at a time, a base URL that can move, and a
hung server that cannot hold a worker past the pull's deadline (with an accurate message and
progress visible while it runs). Against the loopback FHIR server of fake_ehr.py."""

from __future__ import annotations

import copy
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection as db_connection
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from healthcrm.tenancy import organization_context
from integrations.admin import FhirConnectionAdminForm
from integrations.fhir.client import FhirClient, FhirClientError
from integrations.fhir.services import (
    connection_client,
    connections_due,
    fhir_connection_base_url_change,
    fhir_pull_connection,
)
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import FhirConnection, ImportJob, JobStatus, normalize_base_url
from patients.models import Observation, Patient
from tests.integrations.fhir.fake_ehr import FakeEhr


def _connection(org: Any, ehr: FakeEhr, types: list[str], **fields: Any) -> FhirConnection:
    ehr.open = True
    with organization_context(org):
        return FhirConnection.objects.create(name="Loopback EHR", base_url=ehr.base, resource_types=types, **fields)


def _pull(org: Any, connection: FhirConnection, **kwargs: Any) -> ImportJob | None:
    client = connection_client(connection, backoff=0.01)
    return fhir_pull_connection(organization=org, connection_id=connection.pk, client=client, **kwargs)


# -- One pull at a time --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # two pulls in two threads, each with its own connection
def test_two_concurrent_pulls_of_a_connection_run_once(org_a: Any, ehr: FakeEhr) -> None:
    ehr.load(synthea_bundle(51, encounters=2), "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient", "Practitioner", "Encounter", "Observation"])
    ehr.hold.add("Patient")  # the winner's first search waits until the loser has tried
    start = threading.Barrier(2)
    results: list[ImportJob | None] = []

    def attempt() -> None:
        try:
            start.wait(5)
            results.append(_pull(org_a, connection))
        finally:
            db_connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert ehr.hung.wait(10)  # one pull holds the connection and is asking for Patients
    deadline = time.monotonic() + 10
    while not results and time.monotonic() < deadline:
        time.sleep(0.02)
    assert results == [None]  # the other attempt found it claimed and did nothing
    with organization_context(org_a):
        # While it runs, the beat does not start it again (it has never run: it is overdue).
        assert connections_due() == []
    ehr.release.set()
    for thread in threads:
        thread.join(20)
    jobs = [r for r in results if r is not None]
    assert len(jobs) == 1 and jobs[0].status == JobStatus.SUCCEEDED, results
    assert [t for t, _ in ehr.log].count("Patient") == 1
    with organization_context(org_a):
        assert ImportJob.objects.filter(connection=connection).count() == 1
        assert Patient.objects.count() == 1
        connection.refresh_from_db()
        assert connection.pull_claimed_until is None  # released: the next interval pulls again
        assert connections_due(now=timezone.now() + timedelta(days=1)) == [connection.pk]


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_lapses_after_the_deadline(org_a: Any, ehr: FakeEhr) -> None:
    ehr.load(synthea_bundle(52, encounters=1), "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient"], pull_deadline_minutes=10)
    with organization_context(org_a):
        FhirConnection.objects.filter(pk=connection.pk).update(pull_claimed_until=timezone.now() + timedelta(minutes=1))
    assert _pull(org_a, connection) is None and ehr.log == []
    with organization_context(org_a):
        FhirConnection.objects.filter(pk=connection.pk).update(pull_claimed_until=timezone.now() - timedelta(seconds=1))
    assert _pull(org_a, connection).status == JobStatus.SUCCEEDED


# -- The base URL ----------------------------------------------------------------------------------


def test_base_urls_are_normalised() -> None:
    assert normalize_base_url(" HTTPS://EHR.Example:443/fhir/R4/ ") == "https://ehr.example/fhir/R4"
    assert normalize_base_url("http://127.0.0.1:8080/fhir//") == "http://127.0.0.1:8080/fhir"
    assert normalize_base_url("http://ehr.example:80/fhir?x=1#y") == "http://ehr.example/fhir"


def _change_the_ehr(ehr: FakeEhr) -> None:
    """The EHR corrects one observation and records a new one for the same patient."""
    changed = ehr.resources["Observation"][0]
    changed["effectiveDateTime"] = "2024-01-15T10:00:00+00:00"
    changed["meta"] = {"lastUpdated": "2024-02-01T00:00:00Z"}
    new = copy.deepcopy(changed)
    new["id"] = "new-observation-1"
    ehr.resources["Observation"].append(new)


@pytest.mark.django_db
def test_after_adding_a_trailing_slash_later_updates_still_apply(org_a: Any, ehr: FakeEhr) -> None:
    ehr.load(synthea_bundle(53, encounters=2), "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient", "Practitioner", "Encounter", "Observation"])
    assert _pull(org_a, connection).status == JobStatus.SUCCEEDED
    with organization_context(org_a):
        before = Observation.objects.count()
        connection.refresh_from_db()
        connection.base_url = ehr.base + "/"  # an admin edits the URL
        connection.save()

    _change_the_ehr(ehr)
    job = _pull(org_a, connection)
    assert job.status == JobStatus.SUCCEEDED, job.report["failures"]
    assert job.report["counts"]["Observation"] == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    with organization_context(org_a):
        assert Observation.objects.count() == before + 1
        assert Observation.objects.filter(effective_at=datetime(2024, 1, 15, 10, tzinfo=UTC)).count() == 2
        connection.refresh_from_db()
        assert connection.base_url == ehr.base


@pytest.mark.django_db
def test_moving_a_connection_to_a_new_address_is_deliberate_and_keeps_its_links(org_a: Any, ehr: FakeEhr) -> None:
    ehr.load(synthea_bundle(54, encounters=2), "2024-01-01T00:00:00Z")
    connection = _connection(org_a, ehr, ["Patient", "Practitioner", "Encounter", "Observation"])
    assert _pull(org_a, connection).status == JobStatus.SUCCEEDED
    moved = ehr.base.replace("127.0.0.1", "localhost")  # the same server at another address

    with organization_context(org_a):
        data = {k: v for k, v in model_to_dict(connection).items() if v is not None}
        data["resource_types"] = '["Patient", "Encounter", "Observation"]'
        data["cursors"] = "{}"
        form = FhirConnectionAdminForm(data={**data, "base_url": moved}, instance=connection)
        assert not form.is_valid() and "Same server at a new address" in form.errors["base_url"][0]
        form = FhirConnectionAdminForm(data={**data, "base_url": ehr.base + "/"}, instance=connection)
        assert form.is_valid(), form.errors  # another spelling of the same URL is not a move
        connection = FhirConnection.objects.get(pk=connection.pk)
        fhir_connection_base_url_change(connection=connection, base_url=moved + "/")

    _change_the_ehr(ehr)
    job = _pull(org_a, connection)
    assert job.status == JobStatus.SUCCEEDED, job.report["failures"]
    assert job.report["counts"]["Observation"]["updated"] == 1
    assert job.report["counts"]["Observation"]["created"] == 1
    with organization_context(org_a):
        connection.refresh_from_db()
        assert connection.base_url == moved and connection.source_system == ehr.base
        assert connection.cursors["Observation"] == "2024-02-01T00:00:00Z"


# -- A hung server -------------------------------------------------------------------------------


def _listening_socket_that_never_answers() -> socket.socket:
    """The kernel completes the handshake (backlog) but nobody ever reads or writes."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_client_tells_a_hung_server_from_an_unreachable_one() -> None:
    sock = _listening_socket_that_never_answers()
    try:
        hung = FhirClient(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.3, max_retries=0)
        with pytest.raises(FhirClientError) as error:
            hung.get(hung.base_url + "/Patient")
        assert str(error.value) == "The server accepted the connection and did not answer within 0.3 s."
        assert error.value.server_down and not error.value.permanent
    finally:
        sock.close()
    down = FhirClient(f"http://127.0.0.1:{_closed_port()}", timeout=0.3, max_retries=0)
    with pytest.raises(FhirClientError) as error:
        down.get(down.base_url + "/Patient")
    assert "unreachable" in str(error.value) and "accepted" not in str(error.value)


def test_no_request_starts_after_the_deadline_and_none_waits_past_it() -> None:
    sock = _listening_socket_that_never_answers()
    try:
        client = FhirClient(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30, backoff=0.01)
        client.start_deadline(0.5)
        began = time.monotonic()
        with pytest.raises(FhirClientError) as error:
            client.get(client.base_url + "/Patient")
        assert time.monotonic() - began < 3  # not 4 x 30 s
        assert "accepted the connection and did not answer" in str(error.value)
        assert "The pull reached its deadline (0.5 s)" in str(error.value)
    finally:
        sock.close()


@pytest.mark.django_db(transaction=True)  # the pull runs in a thread while the test reads its job
def test_a_hung_server_ends_the_pull_at_its_deadline_with_progress_shown_meanwhile(
    org_a: Any, admin_user: Any, client_for: Any, ehr: FakeEhr
) -> None:
    ehr.load(synthea_bundle(55, encounters=2), "2024-01-01T00:00:00Z")
    ehr.hang.add("Observation")  # accepts the search and never answers
    connection = _connection(
        org_a, ehr, ["Patient", "Practitioner", "Encounter", "Observation", "Condition"], request_timeout_seconds=2
    )
    result: list[ImportJob | None] = []

    def pull() -> None:
        try:
            result.append(_pull(org_a, connection, deadline_seconds=5))
        finally:
            db_connection.close()

    began = time.monotonic()
    thread = threading.Thread(target=pull)
    thread.start()
    assert ehr.hung.wait(10)

    # While it waits: the job says which type it is asking for and what has arrived.
    with organization_context(org_a):
        running = ImportJob.objects.get(connection=connection)
    page = client_for(admin_user).get(reverse("integrations:fhir_import_job", args=[running.pk])).content.decode()
    assert running.status == JobStatus.RUNNING
    assert running.report["progress"] == {"resource_type": "Observation", "types_done": 3, "types": 5}
    assert running.processed == 4  # the patient, the practitioner and two encounters
    assert "Asking for <strong>Observation</strong> (type 4 of 5)" in page and 'id="pull-arrived"' in page

    thread.join(20)
    assert time.monotonic() - began < 12  # bounded by the deadline, not by 4 x the timeout per type
    job = result[0]
    assert job is not None and job.status == JobStatus.FAILED
    assert job.error.startswith("Observation: The server accepted the connection and did not answer within ")
    assert "The pull reached its deadline (5 s)" in job.error and "unreachable" not in job.error
    assert "Condition" not in [t for t, _ in ehr.log]  # a hung server is not asked for the next type
    with organization_context(org_a):
        assert Patient.objects.count() == 1  # what arrived before stays
        connection.refresh_from_db()
        assert set(connection.cursors) == {"Patient", "Practitioner", "Encounter"}
        assert connection.last_error == job.error and connection.last_success_at is None
        assert connection.pull_claimed_until is None
