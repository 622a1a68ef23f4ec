"""Many GROUP BYs of one fact queryset in one scan (PostgreSQL GROUPING SETS).

    counts = grouped_counts(
        AppointmentFact.objects.filter(...),
        columns={"provider": F("practitioner_id"), "outcome": F("outcome")},
        sets={"summary": ("outcome",), "provider": ("provider", "outcome")},
    )
    counts["provider"][(practitioner_id, "no_show")]  # -> 12

A page that groups the same facts seven ways read them seven times (5 s at 100,000 patients);
this reads them once. Values come back as the database driver gives them (no Django converters):
cast an expression whose Python type matters (a date_trunc is a timestamp unless cast to date).
The queryset is the tenant manager's, so its organization filter (and RLS under the app role)
applies as in any other query: it becomes the scan's subquery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet

Counts = dict[str, dict[tuple[Any, ...], int]]


def grouped_counts(queryset: QuerySet[Any], columns: Mapping[str, Any], sets: Mapping[str, Sequence[str]]) -> Counts:
    """Row counts of `queryset` for each named grouping set of `columns` (expressions by name)."""
    names = list(columns)
    unknown = {name for wanted in sets.values() for name in wanted} - set(names)
    if unknown:
        raise ValueError(f"grouping sets name unknown columns: {sorted(unknown)}")
    aliases = {name: f"g{i}" for i, name in enumerate(names)}
    inner = queryset.order_by().values(**{aliases[name]: expression for name, expression in columns.items()})
    sql, params = inner.query.sql_with_params()
    masks: dict[int, str] = {}
    for set_name, wanted in sets.items():
        mask = sum(1 << (len(names) - 1 - i) for i, name in enumerate(names) if name not in wanted)
        if mask in masks:
            raise ValueError(f"grouping sets {masks[mask]!r} and {set_name!r} group by the same columns")
        masks[mask] = set_name
    listed = ", ".join(aliases[name] for name in names)
    groups = ", ".join("(" + ", ".join(aliases[name] for name in wanted) + ")" for wanted in sets.values())
    # Aliases are ours (g0, g1...); the subquery and its parameters are the ORM's.
    query = f"SELECT GROUPING({listed}), {listed}, count(*) FROM ({sql}) AS facts GROUP BY GROUPING SETS ({groups})"  # noqa: S608  # nosec B608
    found: Counts = {set_name: {} for set_name in sets}
    position = {name: i for i, name in enumerate(names)}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for mask, *values, n in cursor.fetchall():
            set_name = masks[mask]
            found[set_name][tuple(values[position[name]] for name in sets[set_name])] = n
    return found
