from __future__ import annotations

from typing import Any

from django import template
from django.urls import ResolverMatch

register = template.Library()

# The patients app serves three entries of the main navigation; its other pages are "Patients".
_PATIENTS_APP_SECTIONS = {
    "appointment_calendar": "appointments",
    "appointment_detail": "appointments",
    "appointment_reschedule": "appointments",
    "appointment_status": "appointments",
    "appointment_cancel": "appointments",
    "appointment_day": "appointments",
    "appointment_month": "appointments",
    "appointment_book": "appointments",
    "availability": "appointments",
    "waitlist": "appointments",
    "my_tasks": "tasks",
    "team_queue": "tasks",
    "follow_up": "tasks",
    "notifications": "",  # the bell, not a navigation entry
}
# Apps that are one navigation entry each, under the entry's name.
_APP_SECTIONS = {
    "engagement": "outreach",
    "integrations": "integrations",
    "analytics": "analytics",
    "compliance": "compliance",
    "members": "staff",
}


def section_for(match: ResolverMatch | None) -> str:
    """The main-navigation entry a resolved URL belongs to ("" for none): one entry per page."""
    if match is None:
        return ""
    if match.url_name == "dashboard" and not match.app_name:
        return "dashboard"
    if match.app_name == "patients":
        return _PATIENTS_APP_SECTIONS.get(match.url_name or "", "patients")
    return _APP_SECTIONS.get(match.app_name, "")


@register.simple_tag(takes_context=True)
def nav_section(context: dict[str, Any]) -> str:
    """`{% nav_section as section %}`: the entry of the main navigation marked aria-current."""
    request = context.get("request")
    return section_for(getattr(request, "resolver_match", None))
