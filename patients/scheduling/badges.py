"""Badges higher apps put on appointments (the calendar and the appointment page).

patients sits below analytics and engagement in the layers and never imports them; instead
settings.PATIENTS_APPOINTMENT_BADGES names callables (dotted paths, loaded with import_string) that
take a list of appointment ids of the current organization and return {id: badge}, a badge being a
dict with at least `label` and `level` (high / elevated / low), and optionally `reasons` (labels,
no PHI beyond what the page shows), `flag` (worth showing on the calendar) and `kind`.
The include template is patients/partials/appointment_badges.html.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

Badge = dict[str, Any]


def appointment_badges(request: HttpRequest, appointment_ids: Iterable[int]) -> dict[int, list[Badge]]:
    """{appointment id: [badge, ...]} from every configured provider, for a user who may see
    appointments (patients.view_appointment); {} for anyone else. A provider that fails is logged
    (its path, never a value) and skipped: a badge never takes the calendar down."""
    ids = list(appointment_ids)
    if not ids or not request.user.has_perm("patients.view_appointment"):
        return {}
    found: dict[int, list[Badge]] = {}
    for path in settings.PATIENTS_APPOINTMENT_BADGES:
        try:
            badges = import_string(path)(ids)
        except Exception:
            logger.exception("Appointment badge provider %s failed", path)
            continue
        for appointment_id, badge in badges.items():
            found.setdefault(appointment_id, []).append(badge)
    return found
