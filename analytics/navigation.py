"""The analytics tabs: (url name, label, permission). Each page module adds its own line."""

from __future__ import annotations

TABS: list[tuple[str, str, str]] = [
    ("analytics:adherence", "Attendance", "analytics.view_aggregates"),
    ("analytics:reminders", "Reminders and outreach", "analytics.view_aggregates"),
    ("analytics:risk", "No-show risk", "analytics.view_aggregates"),
    ("analytics:population", "Population", "analytics.view_aggregates"),
    ("analytics:cohorts", "Cohorts", "analytics.view_cohort"),
    ("analytics:measures", "Quality measures", "analytics.view_aggregates"),
    ("analytics:effectiveness", "Treatment effectiveness", "analytics.view_aggregates"),
    ("analytics:satisfaction", "Satisfaction", "analytics.view_aggregates"),
    ("analytics:engagement", "Patient engagement", "analytics.view_aggregates"),
    ("analytics:gaps", "Care gaps", "analytics.view_worklists"),
    ("analytics:gap_closure", "Gap closure", "analytics.view_aggregates"),
]
