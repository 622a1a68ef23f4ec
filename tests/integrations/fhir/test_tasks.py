"""fhir_pull_task retries nothing itself: the client retries each request, the schedule the pull."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.fhir import services, tasks
from integrations.fhir.client import FhirClientError
from integrations.models import FhirConnection, ImportJob

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    """A local port nothing listens on: connecting fails at once (a transient, network error)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_transient_failure_is_retried_by_the_client_and_the_schedule_not_by_celery(
    org_a: Any, nurse_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tasks.fhir_pull_task.max_retries == 0
    assert not getattr(tasks.fhir_pull_task, "autoretry_for", ())
    with organization_context(org_a):
        connection = FhirConnection.objects.create(
            name="Down EHR", base_url=f"http://127.0.0.1:{_closed_port()}/fhir", resource_types=["Patient"]
        )
    waits: list[float] = []
    original = services.connection_client
    monkeypatch.setattr(
        services, "connection_client", lambda c, **kw: original(c, sleep=waits.append, timeout=2.0, **kw)
    )

    result = tasks.fhir_pull_task.apply(args=(org_a.pk, connection.pk), kwargs={"actor_id": nurse_user.pk})

    assert result.state == "SUCCESS"  # not RETRY: Celery sends nothing again
    assert waits == [1.0, 2.0, 4.0]  # the client's own backoff, three retries of the unreachable server
    with organization_context(org_a):
        job = ImportJob.objects.get(connection=connection)
        connection.refresh_from_db()
    assert job.status == "failed" and "unreachable" in job.error
    assert connection.cursors == {} and "unreachable" in connection.last_error
    # The database is the schedule: due again once its interval has passed, from the same cursors.
    with organization_context(org_a):
        assert services.connections_due(now=connection.last_run_at) == []
        later = connection.last_run_at + timedelta(minutes=connection.interval_minutes)
        assert services.connections_due(now=later) == [connection.pk]


def test_a_permanent_failure_ends_the_pull_at_once(org_a: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with organization_context(org_a):
        connection = FhirConnection.objects.create(
            name="Elsewhere", base_url="https://ehr.example/fhir", resource_types=["Patient", "Observation"]
        )

    class Refusing:
        requests_made = 0

        def start_deadline(self, seconds: float) -> None:
            pass

        def search(self, resource_type: str, params: dict[str, str]) -> Any:
            self.requests_made += 1
            raise FhirClientError("The server answered 403.", permanent=True)

    client = Refusing()
    monkeypatch.setattr(services, "connection_client", lambda c, **kw: client)
    result = tasks.fhir_pull_task.apply(args=(org_a.pk, connection.pk))
    assert result.state == "SUCCESS"
    assert client.requests_made == 1  # no retry, and the next type is not asked either
    with organization_context(org_a):
        assert ImportJob.objects.get(connection=connection).status == "failed"


# A made-up value standing for PHI in an exception message (a validation error echoing its input).
FAKE_PHI = "Quinn-Zebedee 1961-04-02"


def _phi_in_logs(records: list[Any]) -> list[str]:
    """Records holding FAKE_PHI anywhere: message, arguments, extra fields or the formatted traceback."""
    import logging

    formatter = logging.Formatter("%(message)s")
    return [r.name for r in records if FAKE_PHI in formatter.format(r) or FAKE_PHI in repr(vars(r))]


def test_a_failed_import_logs_its_job_and_the_error_type_never_the_message(
    org_a: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError(f"cannot parse patient {FAKE_PHI}")

    monkeypatch.setattr(services, "fhir_import_data", refuse)
    with organization_context(org_a):
        job = services.import_job_create(data=b"{}", source_system="ehr")
    with caplog.at_level("DEBUG"):
        result = tasks.fhir_import_task.apply(args=(org_a.pk, job.pk))
    assert result.state == "SUCCESS"
    with organization_context(org_a):
        job.refresh_from_db()
    assert job.status == "failed" and "ValueError" in job.error and FAKE_PHI not in job.error
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage().split(" at ")[0] for r in failures] == [f"import job {job.pk} failed: ValueError"]
    assert _phi_in_logs(caplog.records) == []


def test_celerys_own_failure_line_names_the_task_and_the_error_type_never_the_message(
    org_a: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(**kwargs: Any) -> None:
        try:
            raise KeyError(FAKE_PHI)
        except KeyError as exc:
            raise ValueError(f"no patient matches {FAKE_PHI}") from exc

    monkeypatch.setattr(services, "import_job_run", crash)
    with caplog.at_level("DEBUG"):
        result = tasks.fhir_import_task.apply(args=(org_a.pk, 12345))
    assert result.state == "FAILURE"
    [line] = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert line.levelname == "ERROR" and "fhir_import_task" in line.getMessage() and "ValueError" in line.getMessage()
    formatted = caplog.handler.formatter.format(line)
    assert "test_tasks.py" in formatted and "KeyError" in formatted  # where it failed, chained cause too
    assert _phi_in_logs(caplog.records) == []
