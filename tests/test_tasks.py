"""The tenant task base, the beat scans' fan-out, and the task routes.

TenantTask: refuses a None organization, skips a gone or suspended one, sets the audit actor from
`actor_id` (not passed on), hands the Organization to the body; `atomic=True` runs the body in one
transaction inside the organization's context, `atomic=False` runs it outside any, so a step the
body commits stays committed when a later step fails.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from auditlog.models import LogEntry
from celery import Task, shared_task
from django.db import connection

from healthcrm.models import Organization
from healthcrm.tasks import TenantTask, current_actor, fan_out
from healthcrm.tenancy import get_current_organization, organization_context
from patients.models import Patient
from tests.factories import OrganizationFactory, PatientFactory

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent

seen: dict[str, Any] = {}


class Boom(Exception):
    pass


@pytest.fixture(autouse=True)
def _forget() -> None:
    seen.clear()


@shared_task(base=TenantTask, name="tests.probe_task")
def probe_task(organization: Organization, patient_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.current_organization', true)")
        seen["setting"] = cursor.fetchone()[0]
    seen["organization"] = get_current_organization()
    seen["argument"] = organization
    seen["patient_visible"] = Patient.objects.filter(pk=patient_id).exists()


@shared_task(base=TenantTask, atomic=False, name="tests.probe_outside_task")
def probe_outside_task(organization: Organization, patient_id: int) -> None:
    seen["organization"] = get_current_organization()
    seen["argument"] = organization
    seen["in_transaction"] = connection.in_atomic_block
    with organization_context(organization):
        seen["patient_visible"] = Patient.objects.filter(pk=patient_id).exists()


@shared_task(base=TenantTask, name="tests.write_then_fail_task")
def write_then_fail_task(organization: Organization, family_name: str) -> None:
    PatientFactory(family_name=family_name)
    raise Boom("after the write")


@shared_task(base=TenantTask, atomic=False, name="tests.commit_then_fail_task")
def commit_then_fail_task(organization: Organization, family_name: str) -> None:
    with organization_context(organization):
        PatientFactory(family_name=family_name)  # committed here, like a claim before a network call
    raise Boom("after the commit")


@shared_task(base=TenantTask, name="tests.write_as_actor_task")
def write_as_actor_task(organization: Organization) -> None:
    seen["actor"] = current_actor()
    seen["patient"] = PatientFactory()


@shared_task(base=TenantTask, atomic=False, bind=True, name="tests.request_probe_task")
def request_probe_task(self: Task, organization: Organization, thing_id: int) -> None:
    seen["args"] = list(self.request.args)
    seen["kwargs"] = dict(self.request.kwargs)
    seen["actor"] = current_actor()


# -- TenantTask ------------------------------------------------------------------------------------


def test_tenant_task_runs_inside_its_organization(org_a, org_b) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    probe_task.apply(args=(org_a.pk, patient.pk)).get()
    assert seen == {"setting": str(org_a.pk), "organization": org_a, "argument": org_a, "patient_visible": True}
    probe_task.apply(args=(org_b.pk, patient.pk)).get()
    assert seen["organization"] == org_b and seen["argument"] == org_b and seen["patient_visible"] is False
    assert get_current_organization() is None


def test_a_non_atomic_task_gets_its_organization_but_no_context_and_no_transaction(org_a, org_b) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    # pytest-django's own transaction wraps the test: count from there.
    outer = connection.in_atomic_block
    probe_outside_task.apply(args=(org_a.pk, patient.pk)).get()
    assert seen == {"organization": None, "argument": org_a, "in_transaction": outer, "patient_visible": True}
    probe_outside_task.apply(args=(org_b.pk, patient.pk)).get()
    assert seen["argument"] == org_b and seen["patient_visible"] is False


@pytest.mark.parametrize("task", [probe_task, probe_outside_task], ids=["atomic", "not-atomic"])
def test_tenant_task_refuses_to_run_without_an_organization(task: Task) -> None:
    result = task.apply(args=(None, 1))
    with pytest.raises(ValueError, match="needs an organization_id"):
        result.get()
    assert seen == {}


@pytest.mark.parametrize("task", [probe_task, probe_outside_task], ids=["atomic", "not-atomic"])
def test_a_suspended_or_missing_organization_is_skipped(task: Task) -> None:
    suspended = OrganizationFactory(slug="closed", is_active=False)
    assert task.apply(args=(suspended.pk, 1)).get() is None
    assert task.apply(args=(suspended.pk + 1000, 1)).get() is None
    assert seen == {}


def test_actor_id_sets_the_audit_actor_and_is_not_passed_on(org_a, nurse_user) -> None:
    write_as_actor_task.apply(args=(org_a.pk,), kwargs={"actor_id": nurse_user.pk}).get()
    assert seen["actor"] == nurse_user
    with organization_context(org_a):
        entry = LogEntry.objects.get_for_object(seen["patient"]).get(action=LogEntry.Action.CREATE)
    assert entry.actor == nurse_user
    assert current_actor() is None

    write_as_actor_task.apply(args=(org_a.pk,)).get()
    assert seen["actor"] is None


def test_delay_accepts_actor_id_and_still_checks_the_body_arguments(org_a, nurse_user) -> None:
    from healthcrm.celery import app

    app.conf.task_always_eager = True  # delay() checks the arguments, then runs here
    try:
        write_as_actor_task.delay(org_a.pk, actor_id=nurse_user.pk)
        assert seen["actor"] == nurse_user
        with pytest.raises(TypeError):
            write_as_actor_task.delay(org_a.pk, 1, actor_id=nurse_user.pk)
        with pytest.raises(TypeError):
            write_as_actor_task.delay(org_a.pk, someone=nurse_user.pk)
    finally:
        app.conf.task_always_eager = False


def test_the_request_keeps_the_message_arguments_for_a_retry(org_a, nurse_user) -> None:
    request_probe_task.apply(args=(org_a.pk, 7), kwargs={"actor_id": nurse_user.pk}).get()
    assert seen == {"args": [org_a.pk, 7], "kwargs": {"actor_id": nurse_user.pk}, "actor": nurse_user}


@pytest.mark.django_db(transaction=True)
def test_an_atomic_task_rolls_back_and_a_non_atomic_one_keeps_what_it_committed(org_a) -> None:
    # No test transaction around this one: what is visible afterwards was committed.
    with pytest.raises(Boom):
        write_then_fail_task.apply(args=(org_a.pk, "Atomic")).get()
    with pytest.raises(Boom):
        commit_then_fail_task.apply(args=(org_a.pk, "Committed")).get()
    assert not connection.in_atomic_block
    with organization_context(org_a):
        names = sorted(p.family_name for p in Patient.objects.all())
    assert names == ["Committed"]


# -- fan_out ---------------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.during: list[Organization | None] = []

    def delay(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append((*args, kwargs) if kwargs else args)
        self.during.append(get_current_organization())


def test_fan_out_asks_each_active_organization_in_its_context_then_enqueues_outside_it(org_a, org_b) -> None:
    OrganizationFactory(slug="closed", is_active=False)
    asked: list[tuple[Organization, Organization | None, bool]] = []

    def due(organization: Organization) -> list[int]:
        asked.append((organization, get_current_organization(), connection.in_atomic_block))
        return [organization.pk * 10, organization.pk * 10 + 1] if organization == org_a else [organization.pk * 10]

    recorder = _Recorder()
    assert fan_out(recorder, due) == 3  # type: ignore[arg-type]
    assert [(o, current) for o, current, _ in asked] == [(org_a, org_a), (org_b, org_b)]
    assert all(in_transaction for _, _, in_transaction in asked)
    assert recorder.calls == [(org_a.pk, org_a.pk * 10), (org_a.pk, org_a.pk * 10 + 1), (org_b.pk, org_b.pk * 10)]
    assert recorder.during == [None, None, None]


def test_fan_out_without_a_scan_sends_one_task_per_active_organization_with_its_options(org_a, org_b) -> None:
    OrganizationFactory(slug="closed", is_active=False)
    recorder = _Recorder()
    assert fan_out(recorder, full=True) == 2  # type: ignore[arg-type]
    assert recorder.calls == [(org_a.pk, {"full": True}), (org_b.pk, {"full": True})]
    assert recorder.during == [None, None]


def test_the_rules_scan_enqueues_one_materialize_task_per_active_rule(org_a, org_b, monkeypatch) -> None:
    from engagement import tasks
    from engagement.models import Rule

    rules = {}
    for organization in (org_a, org_b):
        with organization_context(organization):
            rules[organization] = Rule.objects.create(
                name="Reminders", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[24]
            )
            Rule.objects.create(
                name="Paused", kind="appointment_reminder", template_key="appointment_reminder", is_active=False
            )
    recorder = _Recorder()
    monkeypatch.setattr(tasks.rule_materialize_task, "delay", recorder.delay)
    tasks.rules_materialize_all_task.apply().get()
    assert recorder.calls == [(org_a.pk, rules[org_a].pk), (org_b.pk, rules[org_b].pk)]


def test_the_fhir_scan_enqueues_a_pull_per_due_connection(org_a, org_b, monkeypatch) -> None:
    from django.utils import timezone

    from integrations.fhir import tasks
    from integrations.models import FhirConnection

    with organization_context(org_a):
        never_run = FhirConnection.objects.create(name="EHR", base_url="https://ehr.example/fhir")
        FhirConnection.objects.create(name="Fresh", base_url="https://ehr.example/fhir2", last_run_at=timezone.now())
    recorder = _Recorder()
    monkeypatch.setattr(tasks.fhir_pull_task, "delay", recorder.delay)
    tasks.fhir_pull_due_task.apply().get()
    assert recorder.calls == [(org_a.pk, never_run.pk)]


# -- Routes ----------------------------------------------------------------------------------------


def _queues_consumed() -> dict[str, set[str]]:
    """The queues each worker command consumes (its -Q), in docker-compose.yml and scripts/run.py."""

    def queues(argv: list[str]) -> set[str]:
        assert "-Q" in argv, f"a worker without -Q consumes only the default queue: {argv}"
        return set(argv[argv.index("-Q") + 1].split(","))

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    found = {}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if "worker" in argv and "celery" in argv[0]:
            found[f"docker-compose:{name}"] = queues(argv)
    # scripts/run.py builds its worker's argv in commands(): read the -Q argument from the source,
    # the same list the supervisor starts.
    source = (REPO / "scripts/run.py").read_text()
    match = re.search(r'"-Q",\s*"([^"]+)"', source)
    assert match, "scripts/run.py starts no worker with -Q"
    found["scripts/run.py:worker"] = set(match.group(1).split(","))
    return found


def _route(task: Task) -> str:
    """The queue a `task.delay(...)` would be published to (the task's own options, then the routes)."""
    from healthcrm.celery import app

    # The options apply_async starts from (the task's own queue=...), copied: route() pops from it.
    options = dict(task._get_exec_options())
    routed = app.amqp.router.route(options, task.name, args=(), kwargs={}, task_type=task)
    queue = routed["queue"]
    return queue if isinstance(queue, str) else queue.name


def _project_tasks() -> dict[str, Task]:
    from healthcrm.celery import app

    app.loader.import_default_modules()  # autodiscovery: every app's tasks.py
    return {name: task for name, task in app.tasks.items() if not name.startswith(("celery.", "tests."))}


def test_every_registered_task_routes_to_a_queue_every_worker_consumes() -> None:
    tasks = _project_tasks()
    assert len(tasks) >= 10, sorted(tasks)
    workers = _queues_consumed()
    assert len(workers) >= 2, workers
    for name, task in sorted(tasks.items()):
        queue = _route(task)
        for worker, consumed in workers.items():
            assert queue in consumed, f"{name} goes to {queue!r}, which {worker} does not consume ({consumed})"


def test_tasks_go_to_the_queue_of_their_kind() -> None:
    routes = {name: _route(task) for name, task in _project_tasks().items()}
    assert routes["engagement.tasks.outbox_send_task"] == "outreach"
    assert routes["engagement.tasks.outbox_send_batch_task"] == "outreach"
    assert routes["engagement.tasks.rule_materialize_task"] == "outreach"
    assert routes["integrations.fhir.tasks.fhir_pull_task"] == "integrations"
    assert routes["integrations.fhir.tasks.fhir_import_task"] == "integrations"
    assert routes["healthcrm.tasks.clear_expired_sessions_task"] == "default"
    # Every integrations task, whatever its sub-package, by the route alone (not its own option).
    from healthcrm.celery import app

    for name in routes:
        if name.startswith("integrations."):
            assert _route_by_name(app, name) == "integrations", name


def _route_by_name(app: Any, name: str) -> str:
    routed = app.amqp.router.route({}, name, args=(), kwargs={})
    return routed["queue"].name


def test_every_scheduled_task_is_registered() -> None:
    from django.conf import settings

    tasks = _project_tasks()
    for entry, spec in settings.CELERY_BEAT_SCHEDULE.items():
        assert spec["task"] in tasks, f"beat entry {entry} names {spec['task']}, which no module registers"
