"""What each role sees first: the dashboard's panels, chosen by the role in the current organization.

A panel is a title, a few figures and/or a short list, and a link to the page where the work is
done. Panels that name patients (today's schedule, panels out of control, arrivals) are shown only
to roles allowed to see them and are access-logged by the dashboard view (the patients listed are
its records). Aggregate panels (key rates) come from the analytics facts, suppressed like every
analytics figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.urls import reverse
from django.utils import timezone

from analytics import adherence
from analytics.filters import Filters, Period
from analytics.models import Exposure
from analytics.stats import percent
from analytics.suppression import HIDDEN, WITHHELD
from healthcrm.auth import role_in_current_organization
from healthcrm.http import TenantRequest

UNCONTROLLED_SYSTOLIC = Decimal(140)  # CMS165's threshold
UNCONTROLLED_HBA1C = Decimal(9)  # CMS122's threshold
LIST_LIMIT = 12


@dataclass
class Row:
    text: str
    detail: str = ""
    url: str = ""
    badge: str = ""


@dataclass
class Panel:
    key: str
    title: str
    figures: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    rows: list[Row] = field(default_factory=list)
    empty: str = ""
    link: tuple[str, str] | None = None  # (url, text)


@dataclass
class Dashboard:
    panels: list[Panel]
    patients_shown: list[Any]  # what the access log records


def _local_today(request: TenantRequest) -> date:
    return timezone.localtime(timezone.now(), request.organization.zone).date()


def _day_bounds(request: TenantRequest, day: date) -> tuple[datetime, datetime]:
    zone = request.organization.zone
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, start + timedelta(days=1)


def _name(patient: Any) -> str:
    return f"{patient.preferred_name or patient.given_name} {patient.family_name}"


# -- Panels --------------------------------------------------------------------------------------


def todays_schedule(request: TenantRequest, board: Dashboard) -> Panel | None:
    """A provider's own visits today (the practitioner linked to their account)."""
    from patients.models import Appointment, Practitioner

    practitioner = Practitioner.objects.filter(user=request.user).first()
    if practitioner is None:
        return None
    start, end = _day_bounds(request, _local_today(request))
    visits = list(
        Appointment.objects.filter(practitioner=practitioner, starts_at__gte=start, starts_at__lt=end)
        .exclude(status="cancelled")
        .select_related("patient")
        .order_by("starts_at")[:LIST_LIMIT]
    )
    board.patients_shown += [v.patient for v in visits]
    zone = request.organization.zone
    return Panel(
        "schedule",
        "Today's schedule",
        rows=[
            Row(
                f"{timezone.localtime(v.starts_at, zone):%H:%M} {_name(v.patient)}",
                v.get_status_display(),
                reverse("patients:appointment_detail", args=[v.pk]),
            )
            for v in visits
        ],
        empty="No visits today.",
        link=(reverse("patients:appointment_calendar") + f"?view=day&practitioner={practitioner.pk}", "Calendar"),
    )


def panel_out_of_control(request: TenantRequest, board: Dashboard) -> Panel | None:
    """Patients on the user's care teams whose latest BP (systolic >= 140) or HbA1c (> 9 %) is out of range."""
    from patients.models import CareTeamMember, Observation, Patient

    panel_ids = list(CareTeamMember.objects.filter(user=request.user, active=True).values_list("patient_id", flat=True))
    if not panel_ids:
        return None
    latest = (
        Observation.objects.filter(patient_id__in=panel_ids, code__in=["85354-9", "4548-4"])
        .order_by("patient_id", "code", "-effective_at")
        .distinct("patient_id", "code")
        .values_list("patient_id", "code", "value_quantity", "components")
    )
    reasons: dict[int, list[str]] = {}
    for patient_id, code, value, components in latest:
        if code == "4548-4" and value is not None and value > UNCONTROLLED_HBA1C:
            reasons.setdefault(patient_id, []).append(f"HbA1c {value:.1f} %")
        if code == "85354-9":
            systolic = next((c.get("value") for c in components or [] if c.get("code") == "8480-6"), None)
            if systolic is not None and Decimal(str(systolic)) >= UNCONTROLLED_SYSTOLIC:
                reasons.setdefault(patient_id, []).append(f"BP systolic {Decimal(str(systolic)):.0f}")
    patients = list(Patient.objects.filter(pk__in=list(reasons)[:LIST_LIMIT]))
    board.patients_shown += patients
    return Panel(
        "out-of-control",
        "My panel: out of range",
        figures=[("Patients on my care teams", str(len(panel_ids))), ("Out of range", str(len(reasons)))],
        rows=[Row(_name(p), ", ".join(reasons[p.pk]), reverse("patients:detail", args=[p.pk])) for p in patients],
        empty="Everyone on your care teams is in range (latest BP and HbA1c).",
    )


def my_overdue_tasks(request: TenantRequest, board: Dashboard) -> Panel | None:
    from patients.care.selectors import my_tasks

    today = _local_today(request)
    tasks = my_tasks(user=request.user, role=role_in_current_organization(request.user), today=today)
    overdue = tasks.filter(due_date__lt=today)
    shown = list(overdue[:LIST_LIMIT])
    board.patients_shown += [t.patient for t in shown]
    return Panel(
        "tasks",
        "My tasks",
        figures=[("Open", str(tasks.count())), ("Overdue", str(overdue.count()))],
        rows=[
            Row(f"{_name(t.patient)}: {t.title}", f"due {t.due_date:%d %b}", reverse("patients:my_tasks"))
            for t in shown
        ],
        empty="Nothing overdue.",
        link=(reverse("patients:my_tasks"), "My tasks"),
    )


def outreach_attention(request: TenantRequest, board: Dashboard) -> Panel | None:
    """Failed messages of the last 7 days and unread replies (counts only)."""
    from engagement.models import ConversationMessage, OutboundMessage

    if not request.user.has_perm("engagement.view_outboundmessage"):
        return None
    since = timezone.now() - timedelta(days=7)
    failed = OutboundMessage.objects.filter(status="failed", due_at__gte=since).count()
    unread = ConversationMessage.objects.filter(direction="in", read_at__isnull=True).count()
    return Panel(
        "outreach",
        "Outreach needing attention",
        figures=[("Failed messages (7 days)", str(failed)), ("Unread replies", str(unread))],
        link=(reverse("engagement:conversations"), "Inbox"),
    )


def arrivals_today(request: TenantRequest, board: Dashboard) -> Panel | None:
    from patients.models import Appointment

    if not request.user.has_perm("patients.view_appointment"):
        return None
    start, end = _day_bounds(request, _local_today(request))
    visits = Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end, status__in=["booked", "confirmed"])
    shown = list(visits.select_related("patient", "practitioner").order_by("starts_at")[:LIST_LIMIT])
    board.patients_shown += [v.patient for v in shown]
    zone = request.organization.zone
    return Panel(
        "arrivals",
        "Today's arrivals",
        figures=[("Still to arrive", str(visits.count()))],
        rows=[
            Row(
                f"{timezone.localtime(v.starts_at, zone):%H:%M} {_name(v.patient)}",
                f"{v.practitioner.display_name} · {v.get_status_display()}",
                reverse("patients:appointment_detail", args=[v.pk]),
            )
            for v in shown
        ],
        empty="No one else is expected today.",
        link=(reverse("patients:appointment_calendar") + "?view=day", "Today's calendar"),
    )


def unconfirmed_tomorrow(request: TenantRequest, board: Dashboard) -> Panel | None:
    from patients.models import Appointment

    if not request.user.has_perm("patients.view_appointment"):
        return None
    start, end = _day_bounds(request, _local_today(request) + timedelta(days=1))
    visits = Appointment.objects.filter(starts_at__gte=start, starts_at__lt=end, status="booked")
    shown = list(visits.select_related("patient").order_by("starts_at")[:LIST_LIMIT])
    board.patients_shown += [v.patient for v in shown]
    zone = request.organization.zone
    return Panel(
        "unconfirmed",
        "Not yet confirmed for tomorrow",
        figures=[("Unconfirmed", str(visits.count()))],
        rows=[
            Row(
                f"{timezone.localtime(v.starts_at, zone):%H:%M} {_name(v.patient)}",
                "call to confirm",
                reverse("patients:appointment_detail", args=[v.pk]),
            )
            for v in shown
        ],
        empty="Every visit tomorrow is confirmed.",
    )


def _month(day: date, back: int = 0) -> Period:
    first = day.replace(day=1)
    for _ in range(back):
        first = (first - timedelta(days=1)).replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    end = min(following - timedelta(days=1), day if back == 0 else following - timedelta(days=1))
    return Period(first, end)


def _shown(value: Any) -> str:
    return value if value in (HIDDEN, WITHHELD) else str(value)


def key_rates(request: TenantRequest, board: Dashboard) -> Panel | None:
    """This month so far vs last month: no-show, show and confirmation rates (suppressed)."""
    if not request.user.has_perm("analytics.view_aggregates"):
        return None
    today = _local_today(request)
    figures = []
    for label, period in (("This month", _month(today)), ("Last month", _month(today, back=1))):
        filters = Filters(period, None, None, None)
        row = adherence.summary(filters).display_rows()[0]
        no_show, _, show = row["rates"]
        reminded = adherence.due_facts(filters).exclude(exposure=Exposure.NONE)
        confirmed = reminded.filter(exposure=Exposure.CONFIRMED).count()
        total_reminded = reminded.count()
        confirmation = (
            percent(confirmed / total_reminded)
            if total_reminded >= 11 and (confirmed == 0 or confirmed >= 11)
            else (HIDDEN if total_reminded else "–")
        )
        none = row["total"] == 0
        figures += [
            (f"{label}: visits due", _shown(row["total"])),
            (f"{label}: no-show rate", "–" if none else percent(no_show[0]) if no_show else HIDDEN),
            (f"{label}: show rate", "–" if none else percent(show[0]) if show else HIDDEN),
            (f"{label}: confirmed after a reminder", confirmation),
        ]
    return Panel("rates", "Key rates", figures=figures, link=(reverse("analytics:adherence"), "Attendance analytics"))


def access_volume(request: TenantRequest, board: Dashboard) -> Panel | None:
    from compliance.models import AccessAction, AccessLog

    if not request.user.has_perm("compliance.view_accesslog"):
        return None
    today = _local_today(request)
    start, _ = _day_bounds(request, today - timedelta(days=6))
    week = AccessLog.objects.filter(created_at__gte=start)
    return Panel(
        "access",
        "Access log, last 7 days",
        figures=[
            ("PHI views and lists", str(week.exclude(action=AccessAction.DENIED).count())),
            ("Refused", str(week.filter(action=AccessAction.DENIED).count())),
            ("Exports", str(week.filter(action=AccessAction.EXPORT).count())),
            ("People", str(week.values("actor").distinct().count())),
        ],
        link=(reverse("compliance:access_log"), "Access log"),
    )


PanelFunction = Callable[[TenantRequest, Dashboard], Panel | None]

# Which panels each role sees, in order. Platform administrators (no role) get the admin's.
PANELS: dict[str, list[PanelFunction]] = {
    "provider": [todays_schedule, panel_out_of_control, my_overdue_tasks, outreach_attention],
    "nurse": [my_overdue_tasks, outreach_attention, panel_out_of_control],
    "coordinator": [my_overdue_tasks, outreach_attention, panel_out_of_control],
    "frontdesk": [arrivals_today, unconfirmed_tomorrow, my_overdue_tasks],
    "admin": [key_rates, outreach_attention, access_volume],
    "analyst": [key_rates],
    "compliance": [access_volume],
}


def dashboard_for(request: TenantRequest) -> Dashboard:
    board = Dashboard(panels=[], patients_shown=[])
    role = role_in_current_organization(request.user) or "admin"
    for function in PANELS.get(role, []):
        panel = function(request, board)
        if panel is not None:
            board.panels.append(panel)
    return board
