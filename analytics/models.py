"""Analytics facts: one row per patient and per appointment, derived from the clinic's own rows.

Pages never aggregate over the base tables (encrypted demographics cannot be grouped in SQL, and
1,000,000 appointments joined to the outbox on every request is too slow). `analytics.refresh`
decrypts what it needs in the worker, keeps only coarse, non-identifying values (an age band, not
a birth date; a weekday and an hour, not a name), and upserts these tables; pages group them.

They are tenant tables with forced row-level security like every other (PostgreSQL materialized
views cannot carry RLS, so they are not used). No PHI in clear: ids, codes, bands and counts only.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

from healthcrm.models import Location, TenantModel


class AgeBand(models.TextChoices):
    CHILD = "0-17", "0–17"
    YOUNG = "18-39", "18–39"
    MIDDLE = "40-64", "40–64"
    OLDER = "65-74", "65–74"
    ELDER = "75+", "75 and over"


class Outcome(models.TextChoices):
    """What became of a visit. The adherence denominator is every visit that fell due:
    attended + no-show + late cancel + cancelled (docs/architecture.md, "Where each figure comes from")."""

    ATTENDED = "attended", "Attended"
    NO_SHOW = "no_show", "No-show"
    LATE_CANCEL = "late_cancel", "Late cancel"
    CANCELLED = "cancelled", "Cancelled"
    UNRECORDED = "unrecorded", "Past, not recorded"
    UPCOMING = "upcoming", "Upcoming"


DUE_OUTCOMES = (Outcome.ATTENDED, Outcome.NO_SHOW, Outcome.LATE_CANCEL, Outcome.CANCELLED)


class Exposure(models.TextChoices):
    """The strongest reminder contact before the visit."""

    NONE = "none", "No reminder delivered"
    DELIVERED = "delivered", "Reminder delivered"
    CONFIRMED = "confirmed", "Confirmed by reply or link"


class PatientFact(TenantModel):
    """A patient as analytics sees them: bands and counts, never a name or a date of birth."""

    patient = models.OneToOneField("patients.Patient", on_delete=models.CASCADE, related_name="+")
    age_band = models.CharField(max_length=8, choices=AgeBand.choices)
    sex = models.CharField(max_length=16)
    language = models.CharField(max_length=35)
    is_active = models.BooleanField(default=True)
    recall_eligible = ArrayField(
        models.CharField(max_length=32),
        default=list,
        blank=True,
        help_text="Recalls whose sex and age condition the patient met at the last refresh (keys).",
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        permissions = [
            ("view_aggregates", "Can see analytics aggregates (counts and rates, small cells suppressed)"),
            ("view_worklists", "Can see analytics patient lists (care gaps, measure drill-downs)"),
        ]
        indexes = [models.Index(fields=["organization", "age_band"], name="patfact_org_age")]

    def __str__(self) -> str:
        return f"PatientFact #{self.pk}"


class AppointmentFact(TenantModel):
    """One appointment, with what adherence and reminder effectiveness group by."""

    appointment = models.OneToOneField("patients.Appointment", on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    practitioner = models.ForeignKey("patients.Practitioner", on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    appointment_type = models.CharField(max_length=32)
    kind = models.CharField(max_length=12)
    starts_at = models.DateTimeField()
    local_date = models.DateField(help_text="The visit's date in the clinic's time zone.")
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday, in the clinic's time zone.")
    hour = models.PositiveSmallIntegerField(help_text="0–23, in the clinic's time zone.")
    lead_days = models.IntegerField(help_text="Days from booking to the visit.")
    age_band = models.CharField(max_length=8, choices=AgeBand.choices)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    status_reason = models.CharField(max_length=16, blank=True)
    exposure = models.CharField(max_length=10, choices=Exposure.choices, default=Exposure.NONE)
    # Reminders delivered before the visit, by channel and offset (hours before the start).
    sms_delivered = models.BooleanField(default=False)
    email_delivered = models.BooleanField(default=False)
    reminded_72h = models.BooleanField(default=False)
    reminded_24h = models.BooleanField(default=False)
    reminded_2h = models.BooleanField(default=False)
    reminder_rules = ArrayField(
        models.BigIntegerField(),
        default=list,
        blank=True,
        help_text="Reminder rules that delivered a reminder for this start before it (ids).",
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "local_date"], name="apptfact_org_date"),
            models.Index(fields=["organization", "practitioner", "local_date"], name="apptfact_org_pract_date"),
            models.Index(
                fields=["organization", "local_date"],
                condition=Q(outcome="upcoming"),
                name="apptfact_org_upcoming",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="apptfact_outcome_valid"),
            models.CheckConstraint(condition=Q(exposure__in=Exposure.values), name="apptfact_exposure_valid"),
        ]

    def __str__(self) -> str:
        return f"AppointmentFact #{self.pk}"


class AppointmentDaily(TenantModel):
    """Due visits per local day and location, counted by one dimension at a time (the pages' cube).

    `dimension` names the grouping (provider, type, weekday, hour, lead, age, reason, heat,
    exposure, channel, offset, rule) and `key` its value as text; `outcome` the visits' outcome
    (for "rule": "<outcome>" as for the others, the key "<rule id>:<exposure>"). A page over 90 days
    sums a few tens of thousands of these instead of grouping hundreds of thousands of facts; with a
    provider filter it reads AppointmentFact (one provider's rows, by index). Built from
    AppointmentFact by analytics.cube, for the days whose facts changed."""

    local_date = models.DateField()
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=12)
    key = models.CharField(max_length=64)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    n = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "local_date"], name="apptdaily_org_date"),
            # The one-dimension sums of a period (totals, trend, locations, the dashboards' rates).
            models.Index(fields=["organization", "dimension", "local_date"], name="apptdaily_org_dim_date"),
        ]

    def __str__(self) -> str:
        return f"AppointmentDaily #{self.pk}"


class NpsGroup(models.TextChoices):
    """Net Promoter groups of a 0-10 answer, and surveys sent but not answered."""

    PROMOTER = "promoter", "Promoters (9–10)"
    PASSIVE = "passive", "Passives (7–8)"
    DETRACTOR = "detractor", "Detractors (0–6)"
    NO_RESPONSE = "none", "No response"


class SurveyFact(TenantModel):
    """One post-visit survey message that was sent, with its answer's scores when there is one.

    Scores only: the comment (PHI) never leaves engagement's SurveyResponse. Practitioner and
    location are the visit's (the response's copies once answered); local_date is the day the
    survey was sent, in the clinic's time zone (months and periods group by it)."""

    message = models.OneToOneField("engagement.OutboundMessage", on_delete=models.CASCADE, related_name="+")
    practitioner = models.ForeignKey(
        "patients.Practitioner", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sent_at = models.DateTimeField()
    local_date = models.DateField(help_text="The day the survey was sent, in the clinic's time zone.")
    nps_group = models.CharField(max_length=10, choices=NpsGroup.choices, default=NpsGroup.NO_RESPONSE)
    nps = models.PositiveSmallIntegerField(null=True, blank=True)
    csat_access = models.PositiveSmallIntegerField(null=True, blank=True)
    csat_explain = models.PositiveSmallIntegerField(null=True, blank=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["organization", "local_date"], name="surveyfact_org_date")]
        constraints = [
            models.CheckConstraint(condition=Q(nps_group__in=NpsGroup.values), name="surveyfact_group_valid"),
        ]

    def __str__(self) -> str:
        return f"SurveyFact #{self.pk}"


class PatientRisk(TenantModel):
    """A patient's chronic conditions and risk tier (analytics/population.py has the rules).

    Catalogue keys, flags and counts only: not the measured values, not the condition codes' text."""

    patient = models.OneToOneField("patients.Patient", on_delete=models.CASCADE, related_name="+")
    conditions = ArrayField(
        models.CharField(max_length=24), default=list, blank=True, help_text="Keys of population.CONDITIONS."
    )
    condition_count = models.PositiveSmallIntegerField(default=0)
    bp_uncontrolled = models.BooleanField(default=False, help_text="Last systolic blood pressure >= 140.")
    a1c_uncontrolled = models.BooleanField(default=False, help_text="Last HbA1c > 9 %.")
    no_shows_12m = models.PositiveSmallIntegerField(default=0)
    acute_12m = models.PositiveSmallIntegerField(default=0, help_text="Post-discharge visits in 12 months.")
    points = models.PositiveSmallIntegerField(default=0)
    tier = models.PositiveSmallIntegerField(default=1)
    refreshed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "tier"], name="patrisk_org_tier"),
            GinIndex(fields=["conditions"], name="patrisk_conditions"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(tier__gte=1, tier__lte=4), name="patrisk_tier_valid"),
        ]

    def __str__(self) -> str:
        return f"PatientRisk #{self.pk}"


class Cohort(TenantModel):
    """A saved population: a definition over the fact tables (analytics/cohorts.py validates and
    selects it), reusable by outreach campaigns ({"cohort_id": N})."""

    name = models.CharField(max_length=120)
    definition = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="cohort_unique_name",
                violation_error_message="A cohort with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return f"Cohort #{self.pk}"


class OutreachDaily(TenantModel):
    """Messages per local due day, rule, channel and patient language, by funnel stage."""

    day = models.DateField()
    rule = models.ForeignKey("engagement.Rule", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=8)
    language = models.CharField(max_length=35)
    scheduled = models.PositiveIntegerField(default=0)
    not_sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    replied = models.PositiveIntegerField(default=0)
    opted_out = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "day"], name="outreach_org_day")]

    def __str__(self) -> str:
        return f"OutreachDaily #{self.pk}"


class Refresh(TenantModel):
    """When each organization's facts were last rebuilt: incremental refreshes start from here."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    full = models.BooleanField(default=False)
    rows = models.JSONField(default=dict, blank=True, help_text="Rows written per builder.")
    seconds = models.JSONField(default=dict, blank=True, help_text="Seconds each builder took.")

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"Refresh #{self.pk}"


# -- Care gaps (analytics/gaps.py) ------------------------------------------------------------------


class GapClosedBy(models.TextChoices):
    """What closed a care gap: the record that fulfilled it, or why it stopped counting."""

    OBSERVATION = "observation", "Result recorded"
    IMMUNIZATION = "immunization", "Immunization given"
    VISIT = "visit", "Visit completed"
    EXPIRED = "expired", "Season ended"
    INELIGIBLE = "ineligible", "No longer eligible"


# Closed by care (the numerator of the gap-closure rate); the others closed without it.
CARE_CLOSURES = (GapClosedBy.OBSERVATION, GapClosedBy.IMMUNIZATION, GapClosedBy.VISIT)


class CareGap(TenantModel):
    """A patient due a preventive-care recall (engagement.recalls: the gap kinds ARE the recall
    definitions), from the day it opened until the closing record arrived.

    `period` is the recall period the gap opened in ("2026-Q4"); a gap stays open across periods
    until closed. At most one open gap per patient and recall. Ids, codes and dates only.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    recall_key = models.CharField(max_length=32)
    period = models.CharField(max_length=16)
    opened_on = models.DateField(help_text="The day the patient became due (the clinic's time zone).")
    closed_on = models.DateField(null=True, blank=True)
    closed_by = models.CharField(max_length=16, choices=GapClosedBy.choices, blank=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["opened_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient", "recall_key"],
                condition=Q(closed_on__isnull=True),
                name="caregap_one_open_per_recall",
                violation_error_message="This patient already has an open gap for this recall.",
            ),
            models.CheckConstraint(
                condition=Q(closed_on__isnull=True, closed_by="")
                | Q(closed_on__isnull=False, closed_by__in=GapClosedBy.values),
                name="caregap_closed_consistent",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "recall_key", "opened_on"],
                condition=Q(closed_on__isnull=True),
                name="caregap_org_open",
            ),
            models.Index(fields=["organization", "opened_on"], name="caregap_org_opened"),
        ]

    def __str__(self) -> str:
        return f"CareGap #{self.pk}"


class MeasureResult(TenantModel):
    """One patient's standing on one quality measure for one rolling 12-month period (analytics/measures.py).

    Only patients in the measure's initial population get a row (a patient without a visit in the
    period is in no measure). The four flags are the eCQM populations: initial population, denominator,
    denominator exclusion (or exception), numerator; a row is never both excluded and in the numerator.
    No age, sex or value is kept: flags, the attributed practitioner and the period only.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    measure = models.CharField(max_length=16, help_text="CMS eCQM id with version, e.g. CMS165v12.")
    period_end = models.DateField(help_text="Last day (clinic time zone) of the 12-month measurement period.")
    in_ip = models.BooleanField(default=True)
    in_denominator = models.BooleanField(default=False)
    excluded = models.BooleanField(default=False)
    in_numerator = models.BooleanField(default=False)
    practitioner = models.ForeignKey(
        "patients.Practitioner", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "measure", "period_end", "patient"], name="measureresult_unique_per_period"
            ),
            models.CheckConstraint(
                condition=Q(in_denominator=False) | Q(in_ip=True), name="measureresult_denominator_in_ip"
            ),
            models.CheckConstraint(
                condition=Q(excluded=False) | Q(in_denominator=True), name="measureresult_excluded_in_denominator"
            ),
            models.CheckConstraint(
                condition=Q(in_numerator=False) | Q(in_denominator=True, excluded=False),
                name="measureresult_numerator_in_denominator",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "measure", "period_end", "practitioner"], name="measureresult_org_pract"
            ),
            # Which periods have results (analytics.measure_selectors.measure_periods) and their deletion.
            models.Index(fields=["organization", "period_end"], name="measureresult_org_period"),
        ]

    def __str__(self) -> str:
        return f"MeasureResult #{self.pk}"


class TreatmentChange(TenantModel):
    """One patient's change in a care-plan goal measure (HbA1c, systolic BP) for treatment effectiveness
    (analytics/measure_selectors.py): on a plan, from the plan's start; without one, from the plan
    group's median start. Only the change is kept, with the group it belongs to; no value or date."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="+")
    condition = models.CharField(max_length=16, help_text="Condition group, e.g. diabetes, hypertension.")
    goal = models.CharField(max_length=16, help_text="Goal measure, e.g. hba1c, systolic.")
    on_plan = models.BooleanField()
    change = models.FloatField(help_text="Latest value minus the baseline, in the measure's unit.")
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "condition", "goal", "patient"], name="treatmentchange_unique_per_group"
            ),
        ]

    def __str__(self) -> str:
        return f"TreatmentChange #{self.pk}"


class MeasureCount(TenantModel):
    """MeasureResult summed per measure, period and attributed practitioner (null: not attributed):
    what the measure pages group, so a page reads a few hundred rows, not one per patient and period."""

    measure = models.CharField(max_length=16)
    period_end = models.DateField()
    practitioner = models.ForeignKey(
        "patients.Practitioner", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    denominator = models.PositiveIntegerField()
    excluded = models.PositiveIntegerField()
    numerator = models.PositiveIntegerField()
    refreshed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["organization", "period_end", "measure"], name="measurecount_org_period")]

    def __str__(self) -> str:
        return f"MeasureCount #{self.pk}"


class RiskModelStatus(models.TextChoices):
    TRAINED = "trained", "Trained"
    TOO_LITTLE = "too_little_history", "Too little history"


class RiskModel(TenantModel):
    """One training run of an organization's no-show model (analytics/risk.py): its fitted parameters
    as plain JSON (feature names, coefficients, training means, intercept; never a pickle), and how
    well it did on the most recent visits it was not trained on. The newest row is the one in use."""

    trained_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=RiskModelStatus.choices)
    feature_names = models.JSONField(default=list, blank=True, help_text='One-hot codes, e.g. "lead:31-90".')
    coefficients = models.JSONField(default=list, blank=True, help_text="Log-odds per feature, same order.")
    feature_means = models.JSONField(default=list, blank=True, help_text="Training mean per feature (reasons).")
    intercept = models.FloatField(null=True, blank=True)
    auc = models.FloatField(null=True, blank=True, help_text="ROC AUC on the hold-out (latest ~20 % by date).")
    brier = models.FloatField(null=True, blank=True, help_text="Brier score on the hold-out.")
    calibration = models.JSONField(default=list, blank=True, help_text="Per score band: visits, no-shows, mean score.")
    n_train = models.PositiveIntegerField(default=0)
    n_train_no_shows = models.PositiveIntegerField(default=0)
    n_test = models.PositiveIntegerField(default=0)
    n_test_no_shows = models.PositiveIntegerField(default=0)
    history_from = models.DateField(null=True, blank=True)
    test_from = models.DateField(null=True, blank=True, help_text="First day of the hold-out.")
    history_to = models.DateField(null=True, blank=True)
    seconds = models.FloatField(default=0, help_text="Training time.")
    note = models.CharField(max_length=200, blank=True, help_text="Why there is no model (no PHI).")

    class Meta:
        ordering = ["-trained_at", "-id"]
        get_latest_by = "trained_at"
        indexes = [models.Index(fields=["organization", "-trained_at"], name="riskmodel_org_trained")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RiskModelStatus.values), name="riskmodel_status_valid"),
        ]

    def __str__(self) -> str:
        return f"RiskModel #{self.pk}"


class AppointmentRisk(TenantModel):
    """An upcoming visit's no-show probability under the organization's current model, with the
    features that raise it most (codes and labels only, no PHI)."""

    appointment = models.OneToOneField("patients.Appointment", on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(RiskModel, on_delete=models.CASCADE, related_name="scores")
    score = models.FloatField(help_text="Probability of a no-show, 0–1.")
    reasons = models.JSONField(default=list, blank=True, help_text='[{"code", "label", "log_odds"}], strongest first.')
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=0) & Q(score__lte=1), name="appointmentrisk_score_range"),
        ]

    def __str__(self) -> str:
        return f"AppointmentRisk #{self.pk}"
