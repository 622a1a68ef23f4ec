"""No-show risk for upcoming visits: a transparent logistic regression per organization.

    risk_train(now=...)   # inside organization_context(org): fit on the clinic's own history
    risk_score(now=...)   # score the visits of the next RISK_HORIZON with the newest model
    risk_status()         # what the analytics page shows: too little history, or the model's figures

What is predicted. Among the visits that fell due and whose outcome is known as attended or no-show
(analytics.models.AppointmentFact), the probability of a no-show. Late cancels are left out of the
population, on both sides: the patient told the clinic (so the extra reminder this score drives
would not have helped), and calling them "attended" would teach the model that their pattern is
safe. Cancellations, unrecorded past visits and upcoming visits are not outcomes either.

Features (all binned, one-hot, so every coefficient reads as "this level adds x to the log-odds"):
lead time (days from booking), the patient's earlier no-show rate (only visits that started before
this one: no leakage from the future), weekday and hour band (clinic time), appointment type, age
band, whether the patient confirmed (reply or link), whether a reminder was delivered. Scores of
upcoming visits use what is known so far: a visit not yet confirmed or reminded scores as such,
and the daily rescoring lowers it once the patient confirms.

Evaluation. Visits sorted by start: the earliest ~80 % train, the latest ~20 % (the hold-out) give
the ROC AUC, the Brier score and a calibration table (visits, no-shows and mean score per score
band). The model then in use is refitted on all of them (the hold-out figures describe the same
procedure on less data). Fewer than RISK_MIN_VISITS due visits or RISK_MIN_NO_SHOWS no-shows in
the training part, or a hold-out without both outcomes: no model, no scores, and the status says so.

Reasons. A visit's log-odds is the intercept plus, per feature group, coefficient x value; measured
against the training average (coefficient x (value - mean)) the groups that raise this visit's risk
most are its reasons (up to three, strongest first), as codes and labels with no PHI.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from analytics.models import AppointmentFact, AppointmentRisk, Exposure, Outcome, RiskModel, RiskModelStatus
from analytics.stats import percent
from analytics.suppression import Column, CountTable, RateColumn
from engagement.services import risk_reminders_enqueue
from healthcrm.tenancy import require_current_organization

RISK_MIN_VISITS = 200
RISK_MIN_NO_SHOWS = 20
RISK_TEST_SHARE = 0.2
RISK_HORIZON = timedelta(days=14)
POPULATION = (Outcome.ATTENDED, Outcome.NO_SHOW)
MAX_REASONS = 3

# -- Features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A feature group: its code prefix, how it reads, and its levels' labels."""

    code: str
    label: str
    levels: dict[str, str]  # level code -> label (an unknown level is labelled by its code)

    def level_label(self, level: str) -> str:
        return self.levels.get(level, level.replace("_", " "))


LEAD_EDGES = (0, 1, 8, 31, 91)  # lower bounds, in days
LEAD_LEVELS = ("0", "1-7", "8-30", "31-90", "91+")
PRIOR_LEVELS = ("none", "0", "1-19", "20-49", "50+")
HOUR_EDGES = (0, 9, 12, 14, 17)
HOUR_LEVELS = ("before-9", "9-11", "12-13", "14-16", "17-later")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_HOUR_NAMES = ("before 9:00", "9:00–11:59", "12:00–13:59", "14:00–16:59", "17:00 or later")

GROUPS: dict[str, Group] = {
    g.code: g
    for g in (
        Group(
            "lead",
            "Booked",
            {
                "0": "the same day",
                "1-7": "1–7 days ahead",
                "8-30": "8–30 days ahead",
                "31-90": "31–90 days ahead",
                "91+": "more than 90 days ahead",
            },
        ),
        Group(
            "prior",
            "Earlier visits missed",
            {
                "none": "no earlier visits",
                "0": "none",
                "1-19": "under 20 %",
                "20-49": "20–49 %",
                "50+": "half or more",
            },
        ),
        Group(
            "weekday",
            "Day",
            dict(zip(WEEKDAYS, _DAY_NAMES, strict=True)),
        ),
        Group(
            "hour",
            "Time",
            dict(zip(HOUR_LEVELS, _HOUR_NAMES, strict=True)),
        ),
        Group("type", "Visit type", {}),
        Group("age", "Age band", {}),
        Group("confirmed", "Confirmed", {"yes": "yes", "no": "not confirmed"}),
        Group("reminder", "Reminder delivered", {"yes": "yes", "no": "none delivered"}),
    )
}


def _type_labels() -> dict[str, str]:
    from patients.models import AppointmentType

    return {str(value): str(label) for value, label in AppointmentType.choices}


def feature_label(code: str) -> str:
    """'lead:31-90' -> 'Booked: 31–90 days ahead' (no PHI: codes of bands)."""
    group_code, _, level = code.partition(":")
    group = GROUPS[group_code]
    if group_code == "type":
        return f"{group.label}: {_type_labels().get(level, level.replace('_', ' '))}"
    return f"{group.label}: {group.level_label(level)}"


@dataclass
class Visits:
    """Fact rows as column arrays (one entry per visit)."""

    appointment_id: np.ndarray
    patient_id: np.ndarray
    starts_at: np.ndarray  # int64 seconds since the epoch (UTC)
    lead_days: np.ndarray
    weekday: np.ndarray
    hour: np.ndarray
    appointment_type: np.ndarray  # object (str)
    age_band: np.ndarray  # object (str)
    confirmed: np.ndarray  # bool
    reminded: np.ndarray  # bool
    no_show: np.ndarray  # bool (training) / False (scoring)
    prior_visits: np.ndarray  # earlier due visits of the patient
    prior_no_shows: np.ndarray

    def __len__(self) -> int:
        return len(self.appointment_id)

    def take(self, index: Any) -> Visits:
        return Visits(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


# One query, not the ORM: at 1,000,000 visits building model instances or dicts costs more than
# the fit. Row-level security applies (the app role); the organization is also named explicitly.
_FACT_SQL = """
    SELECT appointment_id, patient_id, EXTRACT(EPOCH FROM starts_at)::bigint, lead_days, weekday, hour,
           appointment_type, age_band, exposure = %s, sms_delivered OR email_delivered, outcome = %s
    FROM analytics_appointmentfact
    WHERE organization_id = %s AND outcome = ANY(%s) AND starts_at > %s AND starts_at < %s
    ORDER BY starts_at, appointment_id
"""


def facts_read(*, outcomes: Sequence[str], after: datetime, before: datetime) -> Visits:
    """The current organization's facts with these outcomes starting in (after, before), by start."""
    organization = require_current_organization()
    with connection.cursor() as cursor:
        params: list[Any] = [Exposure.CONFIRMED.value, Outcome.NO_SHOW.value, organization.pk]
        cursor.execute(_FACT_SQL, [*params, [str(o) for o in outcomes], after, before])
        return visits_from_rows(cursor.fetchall())


def visits_from_rows(rows: Sequence[tuple[Any, ...]]) -> Visits:
    """Column arrays from _FACT_SQL's rows (prior counts zero: see with_prior_counts)."""
    n = len(rows)
    c = list(zip(*rows, strict=True)) if n else [()] * 11
    ints = [np.array(c[i], dtype=np.int64) for i in range(6)]
    return Visits(
        appointment_id=ints[0],
        patient_id=ints[1],
        starts_at=ints[2],
        lead_days=ints[3],
        weekday=ints[4],
        hour=ints[5],
        appointment_type=np.array(c[6], dtype=object),
        age_band=np.array(c[7], dtype=object),
        confirmed=np.array(c[8], dtype=bool),
        reminded=np.array(c[9], dtype=bool),
        no_show=np.array(c[10], dtype=bool),
        prior_visits=np.zeros(n, dtype=np.int64),
        prior_no_shows=np.zeros(n, dtype=np.int64),
    )


def with_prior_counts(visits: Visits) -> Visits:
    """Each visit's earlier due visits and no-shows of the same patient (strictly earlier starts
    among these visits: the outcome of a visit never feeds its own or an earlier visit's features)."""
    n = len(visits)
    if n == 0:
        return visits
    order = np.lexsort((visits.appointment_id, visits.starts_at, visits.patient_id))
    patients = visits.patient_id[order]
    outcome = visits.no_show[order].astype(np.int64)
    group_start = np.r_[True, patients[1:] != patients[:-1]]
    start_index = np.maximum.accumulate(np.where(group_start, np.arange(n), 0))
    position = np.arange(n)
    cum_no_shows = np.r_[0, np.cumsum(outcome)[:-1]]  # exclusive: before this row
    prior_visits = position - start_index
    prior_no_shows = cum_no_shows - cum_no_shows[start_index]
    visits.prior_visits = np.empty(n, dtype=np.int64)
    visits.prior_no_shows = np.empty(n, dtype=np.int64)
    visits.prior_visits[order] = prior_visits
    visits.prior_no_shows[order] = prior_no_shows
    return visits


@dataclass
class Encoded:
    """Each visit's level per feature group, as an index into that group's level codes."""

    levels: dict[str, list[str]]  # group -> level codes
    codes: np.ndarray  # (visits, groups) int

    def take(self, index: Any) -> Encoded:
        return Encoded(self.levels, self.codes[index])


def _categories(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(sorted distinct values, each value's index among them); a dict, not a sort of 1,000,000 strings."""
    first_seen: dict[str, int] = {}
    codes = np.fromiter((first_seen.setdefault(str(v), len(first_seen)) for v in values), np.int64, len(values))
    names = sorted(first_seen)
    remap = np.array([names.index(name) for name in first_seen] or [0], dtype=np.int64)
    return names, remap[codes]


def encode(visits: Visits) -> Encoded:
    """Bin every feature (integers throughout: cheap at 1,000,000 visits)."""
    lead = np.searchsorted(LEAD_EDGES, np.maximum(visits.lead_days, 0), "right") - 1
    rate = visits.prior_no_shows / np.maximum(visits.prior_visits, 1)
    prior = np.select(
        [visits.prior_visits == 0, visits.prior_no_shows == 0, rate < 0.2, rate < 0.5], [0, 1, 2, 3], default=4
    )
    hour = np.searchsorted(HOUR_EDGES, visits.hour, "right") - 1
    types, type_codes = _categories(visits.appointment_type)
    ages, age_codes = _categories(visits.age_band)
    levels = {
        "lead": list(LEAD_LEVELS),
        "prior": list(PRIOR_LEVELS),
        "weekday": list(WEEKDAYS),
        "hour": list(HOUR_LEVELS),
        "type": types,
        "age": ages,
        "confirmed": ["no", "yes"],
        "reminder": ["no", "yes"],
    }
    codes = np.column_stack(
        [
            lead,
            prior,
            np.clip(visits.weekday, 0, 6),
            hour,
            type_codes,
            age_codes,
            visits.confirmed.astype(np.int64),
            visits.reminded.astype(np.int64),
        ]
    ).astype(np.int64)
    return Encoded(levels, codes.reshape(len(visits), len(levels)))


def vocabulary(encoded: Encoded) -> list[str]:
    """The one-hot columns: every group:level these visits have, in group order."""
    names: list[str] = []
    for g, (group, levels) in enumerate(encoded.levels.items()):
        seen = np.bincount(encoded.codes[:, g], minlength=len(levels)) if len(encoded.codes) else np.zeros(0)
        names.extend(f"{group}:{level}" for i, level in enumerate(levels) if i < len(seen) and seen[i] > 0)
    return names


def columns_for(encoded: Encoded, names: Sequence[str]) -> np.ndarray:
    """Each visit's one-hot column per group, (visits, groups); -1 where its level is not among
    `names` (a level the model never saw adds nothing)."""
    index = {name: i for i, name in enumerate(names)}
    columns = np.full(encoded.codes.shape, -1, dtype=np.int64)
    for g, (group, levels) in enumerate(encoded.levels.items()):
        lookup = np.array([index.get(f"{group}:{level}", -1) for level in levels] or [-1], dtype=np.int64)
        if len(encoded.codes):
            columns[:, g] = lookup[encoded.codes[:, g]]
    return columns


def one_hot(columns: np.ndarray, width: int) -> sparse.csr_matrix:
    rows, groups = np.nonzero(columns >= 0)
    data = (np.ones(len(rows)), (rows, columns[rows, groups]))
    return sparse.csr_matrix(data, shape=(columns.shape[0], width), dtype=np.float64)


# -- Fitting and evaluating ------------------------------------------------------------------------


@dataclass
class Fitted:
    names: list[str]
    coefficients: np.ndarray
    intercept: float
    means: np.ndarray

    def log_odds(self, columns: np.ndarray) -> np.ndarray:
        """Intercept + the coefficient of each group's level (columns from columns_for)."""
        padded = np.r_[self.coefficients, 0.0]  # column -1: not in the model, adds nothing
        return self.intercept + padded[columns].sum(axis=1)

    def predict(self, columns: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(columns)))


def fit(encoded: Encoded, no_show: np.ndarray) -> Fitted:
    """Logistic regression over the one-hot features. Every feature is a band, so visits share few
    distinct rows: each distinct row is fitted once per outcome, weighted by its count, which is the
    same log-loss as one row per visit (and the same model) at a fraction of the time."""
    names = vocabulary(encoded)
    columns = columns_for(encoded, names)
    # One integer per distinct row (each group's level as a digit): np.unique on rows is slow.
    key = np.zeros(len(columns), dtype=np.int64)
    for g, levels in enumerate(encoded.levels.values()):
        key = key * (len(levels) + 1) + encoded.codes[:, g]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    distinct, inverse = columns[first], inverse.ravel()
    positives = np.bincount(inverse, weights=no_show.astype(np.float64), minlength=len(distinct))
    totals = np.bincount(inverse, minlength=len(distinct)).astype(np.float64)
    matrix = one_hot(np.vstack([distinct, distinct]), len(names))
    y = np.r_[np.ones(len(distinct)), np.zeros(len(distinct))]
    weights = np.r_[positives, totals - positives]
    keep = weights > 0
    # L2 (C=1, as with one row per visit) keeps the full one-hot coding identifiable and rare levels small.
    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)
    model.fit(matrix[keep], y[keep], sample_weight=weights[keep])
    counts = np.bincount(columns[columns >= 0], minlength=len(names)).astype(np.float64)
    means = counts / max(len(columns), 1)
    return Fitted(names, model.coef_.ravel().astype(float), float(model.intercept_[0]), means)


def calibration_table(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """Visits by predicted score, in deciles (quintiles under 1,000 visits): visits, no-shows,
    mean predicted score, score range."""
    bands = 10 if len(y) >= 1000 else 5
    order = np.argsort(p, kind="stable")
    table = []
    for number, part in enumerate(np.array_split(order, bands), start=1):
        if len(part) == 0:
            continue
        table.append(
            {
                "band": number,
                "visits": int(len(part)),
                "no_shows": int(y[part].sum()),
                "mean_score": float(p[part].mean()),
                "min_score": float(p[part].min()),
                "max_score": float(p[part].max()),
            }
        )
    return table


@dataclass
class Evaluation:
    status: str
    note: str = ""
    fitted: Fitted | None = None
    auc: float | None = None
    brier: float | None = None
    calibration: list[dict[str, Any]] | None = None
    n_train: int = 0
    n_train_no_shows: int = 0
    n_test: int = 0
    n_test_no_shows: int = 0
    history_from: Any = None
    test_from: Any = None
    history_to: Any = None


def _day(epoch: int) -> date:
    return datetime.fromtimestamp(int(epoch), tz=UTC).date()


def evaluate_and_fit(visits: Visits) -> Evaluation:
    """Split by date, check there is enough history, fit, measure on the hold-out, refit on all."""
    visits = visits.take(np.lexsort((visits.appointment_id, visits.starts_at)))
    n = len(visits)
    cut = int(math.floor(n * (1 - RISK_TEST_SHARE)))
    train, test = visits.take(slice(0, cut)), visits.take(slice(cut, n))
    result = Evaluation(
        status=RiskModelStatus.TOO_LITTLE,
        n_train=len(train),
        n_train_no_shows=int(train.no_show.sum()),
        n_test=len(test),
        n_test_no_shows=int(test.no_show.sum()),
    )
    if n:
        result.history_from, result.history_to = _day(visits.starts_at[0]), _day(visits.starts_at[-1])
        result.test_from = _day(test.starts_at[0]) if len(test) else None
    if result.n_train < RISK_MIN_VISITS or result.n_train_no_shows < RISK_MIN_NO_SHOWS:
        result.note = (
            f"Too little history: {result.n_train} due visits and {result.n_train_no_shows} no-shows to learn "
            f"from; a model needs at least {RISK_MIN_VISITS} visits and {RISK_MIN_NO_SHOWS} no-shows."
        )
        return result
    if result.n_test_no_shows in (0, result.n_test):
        result.note = "Too little recent history: the latest visits held out for checking have only one outcome."
        return result
    encoded = encode(visits)
    held_out = fit(encoded.take(slice(0, cut)), train.no_show)
    predicted = held_out.predict(columns_for(encoded.take(slice(cut, n)), held_out.names))
    y = test.no_show.astype(np.int64)
    result.auc = float(roc_auc_score(y, predicted))
    result.brier = float(brier_score_loss(y, predicted))
    result.calibration = calibration_table(y, predicted)
    result.fitted = fit(encoded, visits.no_show)
    result.status = RiskModelStatus.TRAINED
    return result


def reasons_for(fitted: Fitted, columns: np.ndarray, limit: int = MAX_REASONS) -> list[list[tuple[str, float]]]:
    """Per row, the (code, contribution) of the groups that raise its log-odds most against the
    training average, strongest first; only groups that raise it."""
    coef, means = fitted.coefficients, fitted.means
    # Each group's contribution relative to the average: coef[active] - sum_j(coef_j * mean_j) over the group.
    group_of = np.array([list(GROUPS).index(name.partition(":")[0]) for name in fitted.names], dtype=np.int64)
    baseline = np.zeros(len(GROUPS))
    np.add.at(baseline, group_of, coef * means)
    present = columns >= 0
    active = np.where(present, coef[np.where(present, columns, 0)], 0.0)
    contributions = active - baseline[None, :]
    found: list[list[tuple[str, float]]] = []
    for r in range(columns.shape[0]):
        ranked = sorted(
            (
                (float(contributions[r, g]), fitted.names[columns[r, g]])
                for g in range(columns.shape[1])
                if present[r, g]
            ),
            reverse=True,
        )
        found.append([(code, value) for value, code in ranked[:limit] if value > 0])
    return found


# -- The organization's model: training, scoring, status -----------------------------------------


EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


def risk_train(*, now: datetime | None = None) -> RiskModel:
    """Fit the current organization's model on its due visits and store it (the newest row is the
    one in use); with too little history, a row that says so and no parameters."""
    organization = require_current_organization()
    now = now or timezone.now()
    started = clock.perf_counter()
    visits = with_prior_counts(facts_read(outcomes=POPULATION, after=EPOCH, before=now))
    result = evaluate_and_fit(visits)
    fitted = result.fitted
    return RiskModel.objects.create(
        organization=organization,
        trained_at=now,
        status=result.status,
        note=result.note,
        feature_names=fitted.names if fitted else [],
        coefficients=[round(float(c), 6) for c in fitted.coefficients] if fitted else [],
        feature_means=[round(float(m), 6) for m in fitted.means] if fitted else [],
        intercept=fitted.intercept if fitted else None,
        auc=result.auc,
        brier=result.brier,
        calibration=result.calibration or [],
        n_train=result.n_train,
        n_train_no_shows=result.n_train_no_shows,
        n_test=result.n_test,
        n_test_no_shows=result.n_test_no_shows,
        history_from=result.history_from,
        test_from=result.test_from,
        history_to=result.history_to,
        seconds=round(clock.perf_counter() - started, 3),
    )


def current_model() -> RiskModel | None:
    """The newest training run of the current organization (trained or not), or None."""
    return RiskModel.objects.order_by("-trained_at", "-id").first()


def fitted_from(model: RiskModel) -> Fitted:
    return Fitted(
        names=list(model.feature_names),
        coefficients=np.array(model.coefficients, dtype=float),
        intercept=float(model.intercept or 0.0),
        means=np.array(model.feature_means, dtype=float),
    )


def _history(patient_ids: Iterable[int], now: datetime) -> dict[int, tuple[int, int]]:
    """patient -> (due visits, no-shows) before now, in the model's population."""
    rows = (
        AppointmentFact.objects.filter(patient_id__in=list(patient_ids), outcome__in=POPULATION, starts_at__lt=now)
        .values("patient_id")
        .annotate(n=Count("id"), k=Count("id", filter=Q(outcome=Outcome.NO_SHOW)))
        .values_list("patient_id", "n", "k")
    )
    return {pid: (n, k) for pid, n, k in rows}


def risk_score(*, now: datetime | None = None) -> int:
    """Score the current organization's upcoming visits (next RISK_HORIZON) with its newest model;
    without a trained model, every stored score is removed. Returns how many visits were scored."""
    organization = require_current_organization()
    now = now or timezone.now()
    model = current_model()
    if model is None or model.status != RiskModelStatus.TRAINED:
        AppointmentRisk.objects.all().delete()
        return 0
    end = now + RISK_HORIZON + timedelta(microseconds=1)
    visits = facts_read(outcomes=[Outcome.UPCOMING], after=now, before=end)
    history = _history(set(visits.patient_id.tolist()), now)
    visits.prior_visits = np.array([history.get(int(p), (0, 0))[0] for p in visits.patient_id], dtype=np.int64)
    visits.prior_no_shows = np.array([history.get(int(p), (0, 0))[1] for p in visits.patient_id], dtype=np.int64)
    fitted = fitted_from(model)
    columns = columns_for(encode(visits), fitted.names)
    scores = fitted.predict(columns)
    reasons = reasons_for(fitted, columns)
    risks = [
        AppointmentRisk(
            organization=organization,
            appointment_id=int(appointment_id),
            model=model,
            score=round(float(score), 4),
            reasons=[{"code": code, "label": feature_label(code), "log_odds": round(value, 3)} for code, value in why],
            scored_at=now,
        )
        for appointment_id, score, why in zip(visits.appointment_id, scores, reasons, strict=True)
    ]
    # Scores of visits no longer in the window (cancelled, moved, begun) go: the badge shows only current ones.
    AppointmentRisk.objects.exclude(appointment_id__in=[r.appointment_id for r in risks]).delete()
    AppointmentRisk.objects.bulk_create(
        risks,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["appointment"],
        update_fields=["model", "score", "reasons", "scored_at", "updated_at"],
    )
    # Rules of kind appointment_reminder with params.extra_when_risk: one extra reminder per visit at or above it.
    risk_reminders_enqueue(scores={r.appointment_id: r.score for r in risks}, now=now)
    return len(risks)


# -- What pages show -----------------------------------------------------------------------------


def risk_level(score: float) -> str:
    if score >= settings.ANALYTICS_RISK_HIGH:
        return "high"
    if score >= settings.ANALYTICS_RISK_ELEVATED:
        return "elevated"
    return "low"


_LEVEL_LABELS = {"high": "High no-show risk", "elevated": "Elevated no-show risk", "low": "Low no-show risk"}


def appointment_badges(appointment_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The patients pages' extension point (settings.PATIENTS_APPOINTMENT_BADGES): for the given
    appointments of the current organization, {id: badge} for those with a current score.

    A badge: kind, level (high / elevated / low), percent, label ("High no-show risk 38 %"),
    reasons (labels, strongest first), flag (worth showing on the calendar: high or elevated)."""
    ids = list(appointment_ids)
    if not ids:
        return {}
    rows = AppointmentRisk.objects.filter(
        appointment_id__in=ids,
        model__status=RiskModelStatus.TRAINED,
        appointment__status__in=("booked", "confirmed"),
    ).values_list("appointment_id", "score", "reasons")
    badges = {}
    for appointment_id, score, reasons in rows:
        level = risk_level(score)
        percent = int(round(score * 100))
        badges[appointment_id] = {
            "kind": "no_show_risk",
            "level": level,
            "percent": percent,
            "label": f"{_LEVEL_LABELS[level]} {percent} %",
            "reasons": [reason["label"] for reason in reasons],
            "flag": level != "low",
        }
    return badges


def risk_status() -> dict[str, Any]:
    """The model's state for the analytics page (PHI-free: model figures only).

    {"state": "none" | "too_little_history" | "trained", "message", "model", "auc", "brier",
     "n_train", "n_test", "calibration": [rows], "coefficients": [(label, log-odds)], ...}"""
    model = current_model()
    if model is None:
        return {"state": "none", "message": "No model has been trained yet.", "model": None}
    status: dict[str, Any] = {
        "state": model.status,
        "model": model,
        "trained_at": model.trained_at,
        "n_train": model.n_train,
        "n_train_no_shows": model.n_train_no_shows,
        "n_test": model.n_test,
        "n_test_no_shows": model.n_test_no_shows,
        "history_from": model.history_from,
        "test_from": model.test_from,
        "history_to": model.history_to,
    }
    if model.status != RiskModelStatus.TRAINED:
        status["message"] = model.note or "Too little history for a model: no risk scores are shown."
        return status
    status.update(
        message=(
            f"Trained on {model.n_train + model.n_test} visits; on the latest {model.n_test} "
            f"(from {model.test_from}) AUC {model.auc:.2f}, Brier score {model.brier:.3f}."
        ),
        auc=model.auc,
        brier=model.brier,
        calibration=[
            {**row, "observed": row["no_shows"] / row["visits"] if row["visits"] else None} for row in model.calibration
        ],
        coefficients=sorted(
            ((feature_label(name), coef) for name, coef in zip(model.feature_names, model.coefficients, strict=True)),
            key=lambda item: -abs(item[1]),
        ),
    )
    return status


def calibration_count_table(model: RiskModel) -> CountTable:
    """The hold-out's calibration as a suppressed count table: per score band, no-shows and
    attended visits (counts 1–10 hidden like every aggregate) and the observed no-show rate."""
    rows = []
    counts: dict[tuple[str, str], int] = {}
    for row in model.calibration:
        key = f"band{row['band']}"
        low, high = percent(row["min_score"]), percent(row["max_score"])
        rows.append((key, f"Band {row['band']}: scores {low} to {high}"))
        counts[(key, "no_show")] = int(row["no_shows"])
        counts[(key, "attended")] = int(row["visits"]) - int(row["no_shows"])
    return CountTable(
        title="Calibration on the hold-out: observed no-shows by predicted score band",
        row_header="Score band",
        columns=[Column("no_show", "No-shows"), Column("attended", "Attended")],
        rows=rows,
        counts=counts,
        rates=[RateColumn("observed", "Observed no-show rate", "no_show")],
        total_label="All held-out visits",
    )
