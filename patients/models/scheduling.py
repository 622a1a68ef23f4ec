"""Practitioners and appointments.

Times are stored in UTC and shown in the organization's (or location's) time zone. Neither a
practitioner nor a patient can be double-booked: the service checks and says so in the form, and
exclusion constraints make the database refuse the race the check cannot see. A cancelled or missed
visit keeps a coded reason that fits its status (a check constraint).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Func, Q

from healthcrm.crypto import EncryptedTextField
from healthcrm.models import Location, TenantModel


class Practitioner(TenantModel):
    """Someone patients are booked with: usually a staff user, or a clinician known from the EHR."""

    display_name = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    npi = models.CharField("NPI", max_length=10, blank=True)
    specialty = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"],
                condition=Q(user__isnull=False),
                name="practitioner_user_unique_per_org",
                violation_error_message="This user is already a practitioner of this organization.",
            ),
            models.UniqueConstraint(
                fields=["organization", "npi"],
                condition=~Q(npi=""),
                name="practitioner_npi_unique_per_org",
                violation_error_message="A practitioner with this NPI already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name


class AppointmentKind(models.TextChoices):
    IN_PERSON = "in_person", "In person"
    TELEHEALTH = "telehealth", "Telehealth"


class AppointmentStatus(models.TextChoices):
    BOOKED = "booked", "Booked"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No-show"


# Which status may follow which. Completed, cancelled and no-show are final.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    AppointmentStatus.BOOKED: frozenset({"confirmed", "checked_in", "cancelled", "no_show"}),
    AppointmentStatus.CONFIRMED: frozenset({"booked", "checked_in", "cancelled", "no_show"}),
    AppointmentStatus.CHECKED_IN: frozenset({"completed", "cancelled"}),
    AppointmentStatus.COMPLETED: frozenset(),
    AppointmentStatus.CANCELLED: frozenset(),
    AppointmentStatus.NO_SHOW: frozenset(),
}
# Statuses that hold the practitioner's time.
ACTIVE_STATUSES = ("booked", "confirmed", "checked_in", "completed")


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = models.Field()


class PointRange(Func):
    """int8range(x, x, '[]'): a bigint as a one-point range. Ranges have GiST support built in,
    so the exclusion constraint needs no btree_gist extension (absent from some servers, such as
    the bundled one `make run` uses, and not installable on every managed database)."""

    function = "INT8RANGE"
    output_field = models.Field()


class AppointmentType(models.TextChoices):
    NEW_PATIENT = "new_patient", "New patient"
    FOLLOW_UP = "follow_up", "Follow-up"
    ANNUAL = "annual", "Annual wellness visit"
    CHRONIC_CARE = "chronic_care", "Chronic care review"
    PRENATAL = "prenatal", "Prenatal visit"
    POST_DISCHARGE = "post_discharge", "Post-discharge follow-up"
    LAB = "lab", "Lab visit"


class StatusReason(models.TextChoices):
    """Why a visit was cancelled or missed: coded, so analytics can count them (no free text, no PHI)."""

    PATIENT_REQUEST = "patient_request", "Patient asked to cancel"
    ILLNESS = "illness", "Patient unwell"
    TRANSPORT = "transport", "No transport"
    COST = "cost", "Cost or coverage"
    CONFLICT = "conflict", "Work, school or family conflict"
    FORGOT = "forgot", "Forgot"
    WEATHER = "weather", "Weather"
    CLINIC = "clinic", "Clinic cancelled (provider unavailable)"
    RESCHEDULED = "rescheduled", "Rescheduled to another time"
    UNKNOWN = "unknown", "Unknown / not reached"
    OTHER = "other", "Other"


# Which reasons fit which final status (the form offers these; the service refuses the rest).
CANCEL_REASONS = frozenset(set(StatusReason.values) - {"forgot"})
NO_SHOW_REASONS = frozenset({"illness", "transport", "forgot", "conflict", "weather", "unknown", "other"})


class ConfirmedVia(models.TextChoices):
    SMS_REPLY = "sms_reply", "SMS reply"
    LINK = "link", "Link in a message"
    STAFF = "staff", "Staff (phone or in person)"


class Appointment(TenantModel):
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="appointments")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="appointments")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=12, choices=AppointmentKind.choices, default=AppointmentKind.IN_PERSON)
    appointment_type = models.CharField(max_length=32, choices=AppointmentType.choices, default="follow_up")
    reason = EncryptedTextField("reason for visit", max_length=2000, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=AppointmentStatus.choices, default=AppointmentStatus.BOOKED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status_reason = models.CharField(
        max_length=16, choices=StatusReason.choices, blank=True, help_text="Why it was cancelled or missed."
    )
    # When and how the patient confirmed (kept after check-in, which the status alone would lose).
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_via = models.CharField(max_length=12, choices=ConfirmedVia.choices, blank=True)
    telehealth_url = models.URLField(max_length=300, blank=True)
    # Booked outside the practitioner's availability on purpose: who did it is in the audit log, why here.
    availability_override = models.BooleanField(default=False)
    availability_override_reason = EncryptedTextField(
        "why outside availability", max_length=500, blank=True, help_text="Why the visit is outside the hours."
    )
    # Where the appointment came from when imported (FHIR): system + resource id, for idempotent upserts.
    source_system = models.CharField(max_length=200, blank=True)
    source_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [
            models.Index(fields=["organization", "practitioner", "starts_at"], name="appt_org_pract_start"),
            models.Index(fields=["organization", "location", "starts_at"], name="appt_org_loc_start"),
            models.Index(fields=["organization", "patient", "starts_at"], name="appt_org_patient_start"),
            models.Index(fields=["organization", "status", "starts_at"], name="appt_org_status_start"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="appointment_ends_after_start",
                violation_error_message="The appointment must end after it starts.",
            ),
            models.CheckConstraint(condition=Q(status__in=AppointmentStatus.values), name="appointment_status_valid"),
            models.CheckConstraint(condition=Q(kind__in=AppointmentKind.values), name="appointment_kind_valid"),
            models.UniqueConstraint(
                fields=["organization", "source_system", "source_id"],
                condition=~Q(source_id=""),
                name="appointment_source_unique_per_org",
            ),
            ExclusionConstraint(
                name="appointment_no_double_booking",
                expressions=[
                    # A practitioner belongs to one organization: the practitioner id decides.
                    (PointRange("practitioner", "practitioner", models.Value("[]")), RangeOperators.OVERLAPS),
                    (TsTzRange("starts_at", "ends_at", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=ACTIVE_STATUSES),
                violation_error_message="This practitioner already has an appointment at that time.",
            ),
            ExclusionConstraint(
                name="appointment_patient_no_overlap",
                expressions=[
                    # A patient belongs to one organization too: one visit at a time, whoever it is with.
                    (PointRange("patient", "patient", models.Value("[]")), RangeOperators.OVERLAPS),
                    (TsTzRange("starts_at", "ends_at", models.Value("[)")), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=ACTIVE_STATUSES),
                violation_error_message="This patient already has an appointment at that time.",
            ),
            models.CheckConstraint(
                condition=Q(status_reason="")
                | Q(status=AppointmentStatus.CANCELLED, status_reason__in=sorted(CANCEL_REASONS))
                | Q(status=AppointmentStatus.NO_SHOW, status_reason__in=sorted(NO_SHOW_REASONS)),
                name="appointment_status_reason_fits",
                violation_error_message="This reason does not fit the appointment's status.",
            ),
        ]

    def __str__(self) -> str:
        return f"Appointment #{self.pk}"

    @property
    def is_final(self) -> bool:
        return not STATUS_TRANSITIONS[self.status]

    def can_become(self, status: str) -> bool:
        return status in STATUS_TRANSITIONS[self.status]


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


def _overlap_message(other_start: object, other_end: object, where: object) -> str:
    return f"This overlaps {other_start:%H:%M}–{other_end:%H:%M} at {where}: a practitioner works one place at a time."


class Availability(TenantModel):
    """When a practitioner sees patients at a location: a weekly window in the location's local time.

    A practitioner with no windows at all is bookable whenever the location is open (as before
    availability existed); once one exists, visits must fit a window (or be booked with an override).
    Windows of one practitioner never overlap on a weekday, whatever the location (`clean`)."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="availability")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["practitioner", "weekday", "start"]
        verbose_name_plural = "availability"
        indexes = [models.Index(fields=["organization", "practitioner", "weekday"], name="avail_org_pract_day")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="availability_ends_after_start",
                violation_error_message="The end must be after the start (a window cannot cross midnight).",
            ),
            models.CheckConstraint(condition=Q(weekday__gte=0, weekday__lte=6), name="availability_weekday_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"

    def clean(self) -> None:
        super().clean()
        if self.start is None or self.end is None or self.practitioner_id is None or self.weekday is None:
            return
        if self.end <= self.start:
            raise ValidationError({"end": "The end must be after the start (a window cannot cross midnight)."})
        clash = (
            Availability.objects.filter(
                practitioner_id=self.practitioner_id, weekday=self.weekday, start__lt=self.end, end__gt=self.start
            )
            .exclude(pk=self.pk)
            .select_related("location")
            .first()
        )
        if clash is not None:
            raise ValidationError({"start": _overlap_message(clash.start, clash.end, clash.location)})


class ExceptionKind(models.TextChoices):
    OFF = "off", "Time off (not bookable)"
    EXTRA = "extra", "Extra hours (bookable)"


class AvailabilityException(TenantModel):
    """A date that differs from the weekly pattern: time off (the whole day, or from start to end;
    at one location or everywhere), or extra hours at a location."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.CASCADE, related_name="availability_exceptions")
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: everywhere."
    )
    date = models.DateField()
    kind = models.CharField(max_length=8, choices=ExceptionKind.choices, default=ExceptionKind.OFF)
    start = models.TimeField(null=True, blank=True, help_text="Empty with the end: the whole day.")
    end = models.TimeField(null=True, blank=True)
    # Shown to colleagues booking ("Conference"): about the practitioner's time, not a patient.
    note = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["practitioner", "date", "start"]
        indexes = [models.Index(fields=["organization", "practitioner", "date"], name="availexc_org_pract_date")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(start__isnull=True) & Q(end__isnull=True))
                | (Q(start__isnull=False) & Q(end__isnull=False) & Q(end__gt=F("start"))),
                name="availability_exception_times_valid",
                violation_error_message="Give both a start and an end (the end after the start), or neither.",
            ),
            models.CheckConstraint(
                condition=Q(kind=ExceptionKind.OFF) | (Q(location__isnull=False) & Q(start__isnull=False)),
                name="availability_extra_has_place_and_time",
                violation_error_message="Extra hours need a location, a start and an end.",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ExceptionKind.values), name="availability_exception_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.date:%Y-%m-%d}"

    @property
    def whole_day(self) -> bool:
        return self.start is None

    def clean(self) -> None:
        super().clean()
        if (self.start is None) != (self.end is None):
            raise ValidationError({"end": "Give both a start and an end, or neither (the whole day)."})
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValidationError({"end": "The end must be after the start (a window cannot cross midnight)."})
        if self.kind == ExceptionKind.EXTRA:
            if self.location_id is None:
                raise ValidationError({"location": "Extra hours need a location."})
            if self.start is None:
                raise ValidationError({"start": "Extra hours need a start and an end."})
            if self.practitioner_id is not None and self.date is not None:
                clash = (
                    AvailabilityException.objects.filter(
                        practitioner_id=self.practitioner_id,
                        date=self.date,
                        kind=ExceptionKind.EXTRA,
                        start__lt=self.end,
                        end__gt=self.start,
                    )
                    .exclude(pk=self.pk)
                    .select_related("location")
                    .first()
                )
                if clash is not None:
                    raise ValidationError({"start": _overlap_message(clash.start, clash.end, clash.location)})


class WaitlistStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    BOOKED = "booked", "Booked"
    REMOVED = "removed", "Removed"


class WaitlistEntry(TenantModel):
    """A patient waiting for an earlier visit (with a practitioner, at a location, or any), from a date
    on; booked from the waitlist page into an open slot, then marked booked with its visit."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="waitlist_entries")
    practitioner = models.ForeignKey(
        Practitioner, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Empty: anyone."
    )
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Empty: anywhere."
    )
    earliest = models.DateField("from")
    latest = models.DateField("until", null=True, blank=True)
    note = EncryptedTextField(max_length=500, blank=True)
    status = models.CharField(max_length=8, choices=WaitlistStatus.choices, default=WaitlistStatus.WAITING)
    appointment = models.ForeignKey(Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "waitlist entries"
        indexes = [models.Index(fields=["organization", "status", "earliest"], name="waitlist_org_status_from")]
        constraints = [
            models.CheckConstraint(
                condition=Q(latest__isnull=True) | Q(latest__gte=F("earliest")),
                name="waitlist_until_after_from",
                violation_error_message="The end of the wait must not be before its start.",
            ),
            models.CheckConstraint(condition=Q(status__in=WaitlistStatus.values), name="waitlist_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Waitlist entry #{self.pk}"


class SlotOfferStatus(models.TextChoices):
    OPEN = "open", "Open"
    TAKEN = "taken", "Taken"
    EXPIRED = "expired", "Expired"


class SlotOffer(TenantModel):
    """A freed slot (a cancelled or moved visit's time) offered to the waitlist: the first patient
    to confirm gets it. Ids, times and codes only (no PHI). `status` moves from open exactly once,
    by a conditional UPDATE (`waitlist_offer_claim`), so two patients confirming together cannot
    both win."""

    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=12, choices=AppointmentKind.choices, default=AppointmentKind.IN_PERSON)
    appointment_type = models.CharField(max_length=32, choices=AppointmentType.choices, default="follow_up")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    freed_from = models.ForeignKey(Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=8, choices=SlotOfferStatus.choices, default=SlotOfferStatus.OPEN)
    appointment = models.ForeignKey(Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["organization", "status", "starts_at"], name="slotoffer_org_status_start")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="slotoffer_ends_after_start"),
            models.CheckConstraint(condition=Q(status__in=SlotOfferStatus.values), name="slotoffer_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Slot offer #{self.pk}"


class OfferStatus(models.TextChoices):
    OFFERED = "offered", "Offered"
    TAKEN = "taken", "Taken"
    MISSED = "missed", "Taken by another patient"
    EXPIRED = "expired", "Expired"


class WaitlistOffer(TenantModel):
    """One waiting patient offered one freed slot (the message with the link is the outbox's row
    about this offer). Staff see its status on the waitlist."""

    slot = models.ForeignKey(SlotOffer, on_delete=models.CASCADE, related_name="offers")
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    status = models.CharField(max_length=8, choices=OfferStatus.choices, default=OfferStatus.OFFERED)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "entry", "-created_at"], name="waitlistoffer_entry")]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slot", "entry"],
                name="waitlistoffer_once_per_entry",
                violation_error_message="This patient was already offered this slot.",
            ),
            models.CheckConstraint(condition=Q(status__in=OfferStatus.values), name="waitlistoffer_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Waitlist offer #{self.pk}"

    def status_at(self, now: object) -> str:
        """What staff see: an offer nobody answered is expired once its slot has started or gone."""
        if self.status == OfferStatus.OFFERED and (
            self.slot.status == SlotOfferStatus.EXPIRED or self.slot.starts_at <= now  # type: ignore[operator]
        ):
            return OfferStatus.EXPIRED
        if self.status == OfferStatus.OFFERED and self.slot.status == SlotOfferStatus.TAKEN:
            return OfferStatus.MISSED
        return self.status
