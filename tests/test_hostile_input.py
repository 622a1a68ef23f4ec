"""Nothing answers 500: every URL pattern, as each kind of staff user, with hostile query values.

A table of values an attacker or a mangled link sends (non-numbers, numbers past bigint, NUL, far
dates, empty, very long) goes into every query parameter the project's views read (also as htmx
requests and as POST fields), and into every integer in a path. Each answer may be 200, a
redirect, 400, 403, 404 or 405; never 500. (Django admin changelists have their own test.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from healthcrm.tenancy import organization_context
from tests.factories import (
    AppointmentFactory,
    MembershipFactory,
    PatientFactory,
    PractitionerFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

HOSTILE = ["abc", "99999999999999999999", "-1", "\x00", "9999-12-31", "", "x" * 3000]
HUGE_ID = "99999999999999999999"
# Every query parameter a view or filter of the project reads (grep request.GET / filtersets).
PARAMETERS = [
    "page",
    "q",
    "date",
    "time",
    "week",
    "start",
    "end",
    "practitioner",
    "location",
    "status",
    "kind",
    "channel",
    "rule",
    "actor",
    "patient",
    "object_type",
    "since",
    "until",
    "view",
    "next",
    "language",
    "priority",
    "assignee",
    "role",
    "o",
    "p",
    "care_team",
    "attempts",
    "within",
    "outcome",
    "note",
]
# The twilio webhooks and the patient link answer strangers; their own tests cover bad input.
SKIP_NAMES = {"logout", "inbound", "status", "patient_link", "device_observation"}


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, str]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern).startswith("admin/"):
                continue
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name not in SKIP_NAMES:
            yield prefix + str(entry.pattern), entry.name or ""


def _fill(route: str, ids: dict[str, int], huge: bool) -> str:
    """A concrete path: `<int:pk>` gets a real id of organization A (or a number past bigint)."""

    def one(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "int":
            return HUGE_ID if huge else str(ids.get(name, ids["pk"]))
        return "x" * 10

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: one(m) if m.group(1) else "x", route)


@pytest.fixture
def ids(org_a: Any) -> dict[str, int]:
    with organization_context(org_a):
        patient = PatientFactory()
        appointment = AppointmentFactory(patient=patient, practitioner=PractitionerFactory())
    # One id serves every `<int:...>`: a patient's; pages for other kinds answer 404 for it.
    return {"pk": patient.pk, "patient_pk": patient.pk, "appointment": appointment.pk}


# The two widest roles: the administrator (settings, outreach, imports) and a provider (clinical).
@pytest.fixture(params=["admin", "provider"])
def staff_client(request: Any, org_a: Any, client: Any) -> Any:
    user = UserFactory(username=f"{request.param}@hostile.example")
    MembershipFactory(user=user, organization=org_a, role=request.param)
    client.force_login(user)
    client.raise_request_exception = False
    return client


# Also sent as htmx requests (partials take other code paths) and as POST bodies (forms, actions).
HTMX_AND_POST = ["abc", "99999999999999999999", "\x00"]


def _get(client: Any, path: str, params: dict[str, str], htmx: bool = False) -> int:
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(path, params, headers=headers)
    return int(response.status_code)


def test_no_url_answers_500_to_hostile_query_values(staff_client: Any, ids: dict[str, int]) -> None:
    failures: list[str] = []
    for route, name in _patterns(get_resolver()):
        path = _fill(route, ids, huge=False)
        for value in HOSTILE:
            status = _get(staff_client, path, dict.fromkeys(PARAMETERS, value))
            if status >= 500:
                failures.append(f"{name} {path} all params={value[:20]!r}: {status}")
        for value in HTMX_AND_POST:
            status = _get(staff_client, path, dict.fromkeys(PARAMETERS, value), htmx=True)
            if status >= 500:
                failures.append(f"htmx {name} {path} all params={value[:20]!r}: {status}")
            status = staff_client.post(path, dict.fromkeys(PARAMETERS, value)).status_code
            if status >= 500:
                failures.append(f"post {name} {path} all fields={value[:20]!r}: {status}")
    assert failures == [], "\n".join(failures)


def test_no_url_answers_500_to_an_id_past_bigint(staff_client: Any, ids: dict[str, int]) -> None:
    failures = []
    for route, name in _patterns(get_resolver()):
        if "<int:" not in route:
            continue
        path = _fill(route, ids, huge=True)
        for method in ("get", "post"):
            status = getattr(staff_client, method)(path).status_code
            if status >= 500:
                failures.append(f"{method} {name} {path}: {status}")
    assert failures == [], "\n".join(failures)
