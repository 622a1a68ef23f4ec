"""The attendance and reminder pages' cube: due visits per day and location, one dimension at a time.

    build_appointment_daily(since, now)   # refresh builder, after the appointment facts
    cube_counts(filters, period)          # the pages' groupings (analytics.grouping.Counts shape)

AppointmentDaily holds, per local day, location, dimension value and outcome, how many due visits
there were. Ninety days at 100,000 patients are ~330,000 facts but ~80,000 cube rows, and the
pages sum those in three queries. A provider filter is answered from the facts instead (one
provider's rows, through the (organization, practitioner, local_date) index): the cube has no
provider column, or it would be larger than the facts.

Every dimension is written from the same fact rows in one INSERT ... SELECT (a LATERAL VALUES
list gives each fact one row per dimension), so every dimension of a day sums to the same total.
Lead-time bands come from adherence.LEAD_BANDS (one definition), offsets as three bits
("101": 72 h and 2 h), channels as none/sms/email/both, reminder rules as "<rule id>:<exposure>".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Sum

from analytics.filters import Filters, Period
from analytics.grouping import Counts
from analytics.models import DUE_OUTCOMES, AppointmentDaily, AppointmentFact
from analytics.refresh import builder, touched_days
from healthcrm.tenancy import require_current_organization

CUBE_DIMENSIONS = (
    "provider",
    "type",
    "weekday",
    "hour",
    "lead",
    "age",
    "reason",
    "heat",
    "exposure",
    "channel",
    "offset",
    "rule",
)


def _lead_band_sql() -> str:
    from analytics.adherence import LEAD_BANDS

    whens = []
    for key, _, low, high in LEAD_BANDS:
        condition = f"f.lead_days >= {int(low)}" + ("" if high is None else f" AND f.lead_days <= {int(high)}")
        whens.append(f"WHEN {condition} THEN '{key}'")
    return "CASE " + " ".join(whens) + " ELSE '31+' END"


_DIMENSION_SQL = """
INSERT INTO analytics_appointmentdaily
       (organization_id, created_at, updated_at, local_date, location_id, dimension, key, outcome, n)
SELECT f.organization_id, %(now)s, %(now)s, f.local_date, f.location_id, d.dimension, d.key, f.outcome, count(*)
  FROM analytics_appointmentfact f
 CROSS JOIN LATERAL (VALUES
       ('provider', f.practitioner_id::text),
       ('type', f.appointment_type::text),
       ('weekday', f.weekday::text),
       ('hour', f.hour::text),
       ('lead', {lead}),
       ('age', f.age_band::text),
       ('reason', f.status_reason::text),
       ('heat', f.weekday::text || ':' || f.hour::text),
       ('exposure', f.exposure::text),
       ('channel', CASE WHEN f.sms_delivered AND f.email_delivered THEN 'both' WHEN f.sms_delivered THEN 'sms'
                        WHEN f.email_delivered THEN 'email' ELSE 'none' END),
       ('offset', f.reminded_72h::int::text || f.reminded_24h::int::text || f.reminded_2h::int::text)
       ) AS d(dimension, key)
 WHERE f.organization_id = %(org)s AND f.outcome = ANY(%(due)s) {days}
 GROUP BY f.organization_id, f.local_date, f.location_id, d.dimension, d.key, f.outcome
"""

_RULE_SQL = """
INSERT INTO analytics_appointmentdaily
       (organization_id, created_at, updated_at, local_date, location_id, dimension, key, outcome, n)
SELECT f.organization_id, %(now)s, %(now)s, f.local_date, f.location_id, 'rule',
       r.rule_id::text || ':' || f.exposure, f.outcome, count(*)
  FROM analytics_appointmentfact f CROSS JOIN LATERAL unnest(f.reminder_rules) AS r(rule_id)
 WHERE f.organization_id = %(org)s AND f.outcome = ANY(%(due)s) {days}
 GROUP BY f.organization_id, f.local_date, f.location_id, r.rule_id, f.exposure, f.outcome
"""

_DELETE_SQL = "DELETE FROM analytics_appointmentdaily WHERE organization_id = %(org)s {days}"


@builder("appointment_daily")
def build_appointment_daily(since: datetime | None, now: datetime) -> int:
    """Rebuild the cube: every day (full), or the days whose facts this run changed (their old
    and new dates: a rescheduled visit leaves one day and joins another)."""
    organization = require_current_organization()
    params: dict[str, Any] = {"org": organization.pk, "now": now, "due": list(DUE_OUTCOMES)}
    days_sql = ""
    if since is not None:
        days = touched_days()
        if days is None:  # run on its own: the days of the facts refreshed by this run's clock
            days = set(AppointmentFact.objects.filter(refreshed_at__gte=now).values_list("local_date", flat=True))
        if not days:
            return 0
        params["days"] = sorted(days)
        days_sql = "AND local_date = ANY(%(days)s::date[])"
    written = 0
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_SQL.format(days=days_sql), params)
        fact_days = days_sql.replace("local_date", "f.local_date")
        cursor.execute(_DIMENSION_SQL.format(lead=_lead_band_sql(), days=fact_days), params)
        written += cursor.rowcount
        cursor.execute(_RULE_SQL.format(days=fact_days), params)
        written += cursor.rowcount
    return written


# -- Reading ------------------------------------------------------------------------------------

_CHANNELS = {"none": (False, False), "sms": (True, False), "email": (False, True), "both": (True, True)}


def cube_counts(filters: Filters, period: Period | None = None) -> Counts | None:
    """The groupings adherence_counts and reminder_counts give, from the cube; None with a provider
    filter (the caller reads the facts then)."""
    if filters.practitioner is not None:
        return None
    chosen = period or filters.period
    rows = AppointmentDaily.objects.filter(local_date__gte=chosen.start, local_date__lte=chosen.end)
    if filters.location is not None:
        rows = rows.filter(location=filters.location)
    found: Counts = {
        name: {} for name in (*CUBE_DIMENSIONS, "summary", "location", "week", "month", "channel", "offset")
    }
    grouped = rows.values_list("dimension", "key", "outcome").annotate(total=Sum("n")).order_by()
    for dimension, key, outcome, n in grouped:
        if dimension == "rule":  # (rule id, exposure), over every outcome
            _add(found["rule"], _rule(key), n)
        elif dimension in _CONVERT:
            _add(found[dimension], (*_CONVERT[dimension](key), outcome), n)
    one_dimension = rows.filter(dimension="type")  # every due visit once
    by_day = one_dimension.values_list("local_date", "location_id", "outcome").annotate(total=Sum("n")).order_by()
    for day, location_id, outcome, n in by_day:
        _add(found["summary"], (outcome,), n)
        _add(found["week"], (day - timedelta(days=day.weekday()), outcome), n)
        _add(found["month"], (day.replace(day=1), outcome), n)
        _add(found["location"], (location_id, outcome), n)
    return found


def cube_summary(filters: Filters, period: Period | None = None) -> dict[str, int] | None:
    """Due visits per outcome in the period, from the cube (one query); None with a provider filter."""
    if filters.practitioner is not None:
        return None
    chosen = period or filters.period
    rows = AppointmentDaily.objects.filter(dimension="type", local_date__gte=chosen.start, local_date__lte=chosen.end)
    if filters.location is not None:
        rows = rows.filter(location=filters.location)
    return dict(rows.values_list("outcome").annotate(total=Sum("n")).order_by())


def _add(cells: dict[tuple[Any, ...], int], key: tuple[Any, ...], n: int) -> None:
    cells[key] = cells.get(key, 0) + n


def _rule(key: str) -> tuple[int, str]:
    rule, _, exposure = key.partition(":")
    return int(rule), exposure


_CONVERT: dict[str, Any] = {
    "provider": lambda key: (int(key),),
    "type": lambda key: (key,),
    "weekday": lambda key: (int(key),),
    "hour": lambda key: (int(key),),
    "lead": lambda key: (key,),
    "age": lambda key: (key,),
    "reason": lambda key: (key,),
    "heat": lambda key: tuple(int(part) for part in key.split(":")),
    "exposure": lambda key: (key,),
    "channel": lambda key: _CHANNELS[key],
    "offset": lambda key: tuple(bit == "1" for bit in key),
}
