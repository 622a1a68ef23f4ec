"""Reminder effectiveness and the outreach funnel.

Attendance by reminder exposure, channel and offset reads AppointmentFact (built in refresh.py):
  exposure  none / delivered / confirmed (the patient confirmed by SMS reply or link before the visit)
  channel   the channels a reminder was delivered on (none, SMS only, email only, both)
  offsets   which reminders were delivered (72 h, 24 h, 2 h before; a visit can have several)
Confirmation rate per rule: of the due visits that got a delivered reminder from the rule, the share
the patient confirmed.

The funnel reads OutreachDaily, one row per day × rule × channel × language, built here from the
outbox. Each message lands in exactly one stage, so the stages partition what was scheduled:
  not sent    still pending, being sent, or cancelled (consent withdrawn, visit moved, expired)
  failed      the provider refused it, or every attempt failed
  sent        accepted by the provider, no delivery receipt (SMS)
  delivered   delivery receipt (SMS) or accepted by the mail server (email); no reply
  replied     delivered, and the patient replied within 72 h (not STOP)
  opted out   the patient answered STOP within 72 h, or used the message's unsubscribe link
A reply is attributed to the patient's latest message sent in the 72 hours before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import F, Func, Sum

from analytics.adherence import OUTCOME_COLUMNS
from analytics.filters import Filters
from analytics.grouping import Counts, grouped_counts
from analytics.models import AppointmentFact, Exposure, Outcome, OutreachDaily
from analytics.refresh import builder
from analytics.suppression import Column, CountTable, RateColumn
from healthcrm.tenancy import require_current_organization

REPLY_WINDOW_HOURS = 72

STAGES = [
    Column("not_sent", "Not sent"),
    Column("failed", "Failed"),
    Column("sent", "Sent, no receipt"),
    Column("delivered", "Delivered"),
    Column("replied", "Replied"),
    Column("opted_out", "Opted out"),
]
ATTENDANCE_RATES = [
    RateColumn("show_rate", "Show rate", Outcome.ATTENDED),
    RateColumn("no_show_rate", "No-show rate", Outcome.NO_SHOW),
]


_FUNNEL_SQL = """
WITH replies AS (
    SELECT DISTINCT ON (i.id) o.id AS outbound_id, i.keyword
    FROM engagement_conversationmessage i
    JOIN engagement_outboundmessage o
      ON o.patient_id = i.patient_id AND o.sent_at <= i.created_at
     AND o.sent_at > i.created_at - make_interval(hours => %(window)s)
    WHERE i.direction = 'in' AND i.created_at >= %(first)s
    ORDER BY i.id, o.sent_at DESC
), answered AS (
    SELECT outbound_id, bool_or(keyword = 'STOP') AS stopped, bool_or(keyword <> 'STOP') AS replied
    FROM replies GROUP BY outbound_id
), classified AS (
    SELECT o.organization_id, (o.due_at AT TIME ZONE %(zone)s)::date AS day, o.rule_id, o.channel,
           coalesce(p.preferred_language, '') AS language,
           CASE
             WHEN o.status IN ('pending', 'sending', 'cancelled') THEN 'not_sent'
             WHEN o.status = 'failed' THEN 'failed'
             WHEN coalesce(a.stopped, false) OR EXISTS (
                  SELECT 1 FROM engagement_linkuse u WHERE u.message_id = o.id AND u.action = 'unsubscribe')
               THEN 'opted_out'
             WHEN coalesce(a.replied, false) THEN 'replied'
             WHEN o.status = 'delivered' OR o.channel = 'email' THEN 'delivered'
             ELSE 'sent'
           END AS stage
    FROM engagement_outboundmessage o
    JOIN patients_patient p ON p.id = o.patient_id
    LEFT JOIN answered a ON a.outbound_id = o.id
    WHERE o.due_at >= %(first)s
)
INSERT INTO analytics_outreachdaily
    (organization_id, created_at, updated_at, day, rule_id, channel, language,
     scheduled, not_sent, failed, sent, delivered, replied, opted_out)
SELECT organization_id, now(), now(), day, rule_id, channel, language, count(*),
       count(*) FILTER (WHERE stage = 'not_sent'), count(*) FILTER (WHERE stage = 'failed'),
       count(*) FILTER (WHERE stage = 'sent'), count(*) FILTER (WHERE stage = 'delivered'),
       count(*) FILTER (WHERE stage = 'replied'), count(*) FILTER (WHERE stage = 'opted_out')
FROM classified
WHERE day >= %(first_day)s
GROUP BY organization_id, day, rule_id, channel, language
"""


@builder("outreach")
def build_outreach_daily(since: datetime | None, now: datetime) -> int:
    """Recompute the funnel from the first local day anything changed (everything when full).

    A message's stage can still change for REPLY_WINDOW_HOURS after it was sent, so an incremental
    run starts that much before the earliest message updated (or replied to) since the last run.
    """
    from engagement.models import ConversationMessage, OutboundMessage

    organization = require_current_organization()
    zone = organization.zone
    if since is None:
        first = datetime(1970, 1, 1, tzinfo=zone)
    else:
        changed = OutboundMessage.objects.filter(updated_at__gte=since).aggregate(m=models.Min("due_at"))["m"]
        replied = ConversationMessage.objects.filter(direction="in", created_at__gte=since).exists()
        candidates = [c for c in (changed, since - timedelta(hours=REPLY_WINDOW_HOURS) if replied else None) if c]
        if not candidates:
            return 0
        first = min(candidates) - timedelta(hours=REPLY_WINDOW_HOURS)
    first_day = first.astimezone(zone).date()
    OutreachDaily.objects.filter(day__gte=first_day).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            _FUNNEL_SQL,
            {"window": REPLY_WINDOW_HOURS, "first": first, "first_day": first_day, "zone": organization.timezone},
        )
        return cursor.rowcount


# -- Selectors ---------------------------------------------------------------------------------


def _due(filters: Filters) -> models.QuerySet[AppointmentFact]:
    return filters.apply(
        AppointmentFact.objects.filter(
            outcome__in=(Outcome.ATTENDED, Outcome.NO_SHOW, Outcome.LATE_CANCEL, Outcome.CANCELLED)
        )
    )


def _outcome_table(
    title: str, header: str, rows: Sequence[tuple[str, str]], counts: dict[tuple[str, str], int]
) -> CountTable:
    present = {r for r, _ in counts}
    return CountTable(
        title, header, OUTCOME_COLUMNS, [r for r in rows if r[0] in present], counts, ATTENDANCE_RATES, "All visits"
    )


def reminder_counts(filters: Filters) -> Counts:
    """Exposure, channel, offset and rule groupings of the period's due visits: from the daily cube,
    or (with a provider filter) from one scan of the facts (and one more for the rules)."""
    from analytics.cube import cube_counts

    return cube_counts(filters) or fact_reminder_counts(filters)


def fact_reminder_counts(filters: Filters) -> Counts:
    """`reminder_counts` from the facts (two scans: the rules multiply rows)."""
    columns = {
        "exposure": F("exposure"),
        "sms": F("sms_delivered"),
        "email": F("email_delivered"),
        "r72": F("reminded_72h"),
        "r24": F("reminded_24h"),
        "r2": F("reminded_2h"),
        "outcome": F("outcome"),
    }
    sets = {
        "exposure": ("exposure", "outcome"),
        "channel": ("sms", "email", "outcome"),
        "offset": ("r72", "r24", "r2", "outcome"),
    }
    counts = grouped_counts(_due(filters), columns, sets)
    rule = Func(F("reminder_rules"), function="unnest", output_field=models.BigIntegerField())
    by_rule = grouped_counts(_due(filters), {"rule": rule, "exposure": F("exposure")}, {"rule": ("rule", "exposure")})
    return {**counts, **by_rule}


def by_exposure(filters: Filters, *, counts: Counts | None = None) -> CountTable:
    grouped = (counts or reminder_counts(filters))["exposure"]
    cells = {(exposure, outcome): n for (exposure, outcome), n in grouped.items()}
    return _outcome_table("Attendance by reminder exposure", "Reminder", list(Exposure.choices), cells)


CHANNEL_ROWS = [
    ("none", "No reminder delivered"),
    ("sms", "SMS only"),
    ("email", "Email only"),
    ("both", "SMS and email"),
]


def by_channel(filters: Filters, *, counts: Counts | None = None) -> CountTable:
    cells: dict[tuple[str, str], int] = {}
    for (sms, email, outcome), n in (counts or reminder_counts(filters))["channel"].items():
        key = "both" if sms and email else "sms" if sms else "email" if email else "none"
        cells[(key, outcome)] = cells.get((key, outcome), 0) + n
    return _outcome_table("Attendance by reminder channel", "Channel", CHANNEL_ROWS, cells)


def _offset_key(r72: bool, r24: bool, r2: bool) -> str:
    parts = [label for flag, label in ((r72, "72 h"), (r24, "24 h"), (r2, "2 h")) if flag]
    return " + ".join(parts) if parts else "none"


OFFSET_ROWS = [
    (_offset_key(a, b, c), _offset_key(a, b, c) if (a or b or c) else "No reminder delivered")
    for a in (True, False)
    for b in (True, False)
    for c in (True, False)
][::-1]


def by_offset(filters: Filters, *, counts: Counts | None = None) -> CountTable:
    cells: dict[tuple[str, str], int] = {}
    for (r72, r24, r2, outcome), n in (counts or reminder_counts(filters))["offset"].items():
        key = _offset_key(r72, r24, r2)
        cells[(key, outcome)] = cells.get((key, outcome), 0) + n
    return _outcome_table("Attendance by reminders delivered (hours before the visit)", "Reminders", OFFSET_ROWS, cells)


def confirmation_by_rule(filters: Filters, *, counts: Counts | None = None) -> CountTable:
    """Per reminder rule: due visits with a delivered reminder from it, confirmed or not (the rules
    are the fact's `reminder_rules`, found when it was built: no join to the outbox here)."""
    from engagement.models import Rule

    rules = list(Rule.objects.filter(kind="appointment_reminder").order_by("name").values_list("pk", "name"))
    grouped = (counts or reminder_counts(filters))["rule"]
    cells: dict[tuple[str, str], int] = {}
    for pk, _ in rules:
        cells[(str(pk), "confirmed")] = 0
        cells[(str(pk), "not_confirmed")] = 0
    for (pk, exposure), n in grouped.items():
        if (str(pk), "confirmed") not in cells:
            continue  # a rule of another kind now, or deleted
        column = "confirmed" if exposure == Exposure.CONFIRMED else "not_confirmed"
        cells[(str(pk), column)] += n
    return CountTable(
        "Confirmation rate per reminder rule",
        "Rule",
        [Column("confirmed", "Confirmed"), Column("not_confirmed", "Not confirmed")],
        [(str(pk), name) for pk, name in rules],
        cells,
        [RateColumn("confirmation_rate", "Confirmation rate", "confirmed")],
        "All reminder rules",
    )


def funnel(filters: Filters, group: str) -> CountTable:
    """The outreach funnel by 'rule', 'channel' or 'language' for messages due in the period."""
    from engagement.models import Rule

    field = {"rule": "rule_id", "channel": "channel", "language": "language"}[group]
    rows = (
        OutreachDaily.objects.filter(day__gte=filters.period.start, day__lte=filters.period.end)
        .values(field)
        .annotate(**{stage.key: Sum(stage.key) for stage in STAGES})
        .order_by(field)
    )
    counts: dict[tuple[str, str], int] = {}
    keys = []
    for row in rows:
        key = str(row[field]) if row[field] is not None else "none"
        keys.append(key)
        for stage in STAGES:
            counts[(key, stage.key)] = row[stage.key] or 0
    if group == "rule":
        names = dict(Rule.objects.values_list("pk", "name"))
        labels = [(k, names.get(int(k), f"Rule #{k}") if k != "none" else "Sent by staff") for k in keys]
    elif group == "channel":
        labels = [(k, {"sms": "SMS", "email": "Email"}.get(k, k)) for k in keys]
    else:
        labels = [(k, k or "Not recorded") for k in keys]
    return CountTable(
        f"Outreach funnel by {group}",
        group.capitalize(),
        STAGES,
        labels,
        counts,
        [
            RateColumn("failed_rate", "Failed", "failed"),
            RateColumn("opt_out_rate", "Opted out", "opted_out"),
        ],
        "All messages",
    )


def funnel_stages(table: CountTable) -> list[tuple[str, int | None]]:
    """Cumulative stages for the funnel chart from the totals row: scheduled, sent, delivered,
    replied, opted out. A stage is shown only if every cell it sums is published."""

    def total(*keys: str) -> int | None:
        cells = [table.cell("__total__", k) for k in keys]
        return sum(cells) if all(isinstance(c, int) for c in cells) else None  # type: ignore[arg-type]

    scheduled = table.cell("__total__", "__total__")
    return [
        ("Scheduled", scheduled if isinstance(scheduled, int) else None),
        ("Sent", total("sent", "delivered", "replied", "opted_out")),
        ("Delivered", total("delivered", "replied", "opted_out")),
        ("Replied", total("replied")),
        ("Opted out", total("opted_out")),
    ]
