from django.contrib import admin

from compliance.access import PHIAdminMixin
from patients.models import (
    Allergy,
    Appointment,
    Availability,
    AvailabilityException,
    BreakGlassEvent,
    CarePlan,
    CarePlanActivity,
    CarePlanTemplate,
    CareTask,
    CareTeamMember,
    Condition,
    Coverage,
    ErasureRequest,
    Goal,
    GoalTemplate,
    Immunization,
    Intervention,
    InterventionTemplate,
    LegalHold,
    Medication,
    Observation,
    Patient,
    PatientDocument,
    PatientIdentifier,
    PatientNote,
    Practitioner,
    TaskEvent,
    TaskTemplate,
    WaitlistEntry,
)
from patients.selectors import patient_list


@admin.register(Patient)
class PatientAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "given_name", "family_name", "date_of_birth", "is_active", "created_at"]
    list_filter = ["is_active", "preferred_language", "preferred_channel"]
    search_fields = ["mrn"]  # shows the search box; the search itself uses blind indexes
    search_help_text = (
        "Name (every word: its first 3+ letters, or an initial beside a whole name), MRN or its number, "
        "phone or its last 7 or 10 digits, email, or date of birth."
    )
    list_per_page = 50

    def get_search_results(self, request, queryset, search_term):
        if not search_term:
            return queryset, False
        return queryset & patient_list(query=search_term), False


class _PatientPartAdmin(PHIAdminMixin, admin.ModelAdmin):
    """Parts of a patient record: listed by patient number, never searched in clear text."""

    raw_id_fields = ["patient"]
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("patient")


@admin.register(PatientIdentifier)
class PatientIdentifierAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "system", "created_at"]
    list_filter = ["system"]


@admin.register(Coverage)
class CoverageAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "payer_name", "valid_from", "valid_to", "is_primary"]
    list_filter = ["is_primary"]


@admin.register(Condition)
class ConditionAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "code_system", "code", "clinical_status"]
    list_filter = ["clinical_status", "code_system"]


@admin.register(Medication)
class MedicationAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "code", "status", "refill_due"]
    list_filter = ["status"]


@admin.register(Allergy)
class AllergyAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "substance_code", "criticality"]
    list_filter = ["criticality"]


@admin.register(Observation)
class ObservationAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "code", "display", "value_quantity", "unit", "abnormal_flag", "effective_at"]
    list_filter = ["category", "abnormal_flag", "code"]
    readonly_fields = ["abnormal_flag"]


@admin.register(Immunization)
class ImmunizationAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "vaccine_code", "display", "occurrence_date", "status"]
    list_filter = ["status", "vaccine_code"]


@admin.register(Practitioner)
class PractitionerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "specialty", "npi", "user", "is_active"]
    list_filter = ["is_active", "specialty"]
    search_fields = ["display_name", "npi"]
    # `user`: a select of the organization's members (compliance/admin_site.py), never a raw id.


@admin.register(Appointment)
class AppointmentAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "starts_at", "practitioner", "location", "kind", "appointment_type", "status"]
    list_filter = ["status", "kind", "appointment_type", "practitioner"]
    date_hierarchy = "starts_at"
    raw_id_fields = ["patient"]
    list_select_related = ["practitioner", "location"]
    readonly_fields = ["status_changed_at", "status_changed_by", "source_system", "source_id"]


@admin.register(Availability)
class AvailabilityAdmin(admin.ModelAdmin):
    """Weekly hours; the admin form runs the model's validation (no overlaps, start before end)."""

    list_display = ["practitioner", "weekday", "start", "end", "location"]
    list_filter = ["weekday", "practitioner", "location"]
    list_select_related = ["practitioner", "location"]


@admin.register(AvailabilityException)
class AvailabilityExceptionAdmin(admin.ModelAdmin):
    list_display = ["practitioner", "date", "kind", "start", "end", "location", "note"]
    list_filter = ["kind", "practitioner"]
    list_select_related = ["practitioner", "location"]
    date_hierarchy = "date"


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "practitioner", "location", "earliest", "latest", "status"]
    list_filter = ["status"]
    readonly_fields = ["appointment"]


# -- Care coordination ------------------------------------------------------------------------------


@admin.register(CareTeamMember)
class CareTeamMemberAdmin(admin.ModelAdmin):
    list_display = ["__str__", "patient", "user", "team_role", "active", "created_at"]
    list_filter = ["team_role", "active"]
    raw_id_fields = ["patient"]  # `user`, `added_by`: the organization's members only
    list_select_related = ["patient", "user"]


class GoalTemplateInline(admin.TabularInline):
    model = GoalTemplate
    extra = 0


class InterventionTemplateInline(admin.TabularInline):
    model = InterventionTemplate
    extra = 0


class TaskTemplateInline(admin.TabularInline):
    model = TaskTemplate
    extra = 0


@admin.register(CarePlanTemplate)
class CarePlanTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "review_interval_days", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "code"]
    inlines = [GoalTemplateInline, InterventionTemplateInline, TaskTemplateInline]


@admin.register(GoalTemplate)
class GoalTemplateAdmin(admin.ModelAdmin):
    list_display = ["description", "template", "observation_code", "unit", "due_in_days"]
    list_select_related = ["template"]


@admin.register(InterventionTemplate)
class InterventionTemplateAdmin(admin.ModelAdmin):
    list_display = ["description", "template"]
    list_select_related = ["template"]


@admin.register(TaskTemplate)
class TaskTemplateAdmin(admin.ModelAdmin):
    list_display = ["title", "template", "assignee_role", "due_in_days", "priority"]
    list_select_related = ["template"]


class _CarePlanPartInline(admin.TabularInline):
    extra = 0


class GoalInline(_CarePlanPartInline):
    model = Goal


class InterventionInline(_CarePlanPartInline):
    model = Intervention


@admin.register(CarePlan)
class CarePlanAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "template", "status", "review_date", "created_at"]
    list_filter = ["status", "template"]
    raw_id_fields = ["patient", "started_by"]
    inlines = [GoalInline, InterventionInline]


@admin.register(Goal)
class GoalAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "care_plan", "observation_code", "due_date", "status"]
    list_filter = ["status", "observation_code"]
    raw_id_fields = ["care_plan"]
    list_per_page = 50


@admin.register(Intervention)
class InterventionAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "care_plan", "status"]
    list_filter = ["status"]
    raw_id_fields = ["care_plan"]
    list_per_page = 50


@admin.register(CareTask)
class CareTaskAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "assignee", "assignee_role", "due_date", "priority", "status"]
    list_filter = ["status", "priority", "assignee_role"]
    raw_id_fields = ["patient", "care_plan", "assignee", "completed_by"]
    readonly_fields = ["completed_at"]


@admin.register(TaskEvent)
class TaskEventAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "task", "field", "actor_label", "created_at"]
    list_filter = ["field"]
    raw_id_fields = ["task", "actor"]
    list_per_page = 50


@admin.register(CarePlanActivity)
class CarePlanActivityAdmin(admin.ModelAdmin):
    list_display = ["__str__", "patient", "care_plan", "change", "actor_label", "created_at"]
    list_filter = ["change"]
    raw_id_fields = ["patient", "care_plan", "task", "actor"]


@admin.register(PatientNote)
class PatientNoteAdmin(_PatientPartAdmin):
    list_display = ["__str__", "patient", "note_type", "author_label", "signed_at", "created_at"]
    list_filter = ["note_type"]
    raw_id_fields = ["patient", "author", "signed_by", "amends"]


@admin.register(PatientDocument)
class PatientDocumentAdmin(_PatientPartAdmin):
    """Read-only: documents are uploaded, downloaded (access-logged) and deleted on the record's tab."""

    list_display = ["__str__", "patient", "kind", "content_type", "size", "created_at", "deleted_at"]
    list_filter = ["kind", "content_type"]
    exclude = ["title", "original_name"]  # PHI: read on the Documents tab, access-logged
    raw_id_fields = ["patient", "uploaded_by", "deleted_by"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BreakGlassEvent)
class BreakGlassEventAdmin(_PatientPartAdmin):
    """Read in the admin; granted on the record's break-the-glass form, reviewed on compliance's page."""

    list_display = ["__str__", "patient", "user_label", "reason", "granted_at", "expires_at", "outcome"]
    list_filter = ["reason", "outcome"]
    raw_id_fields = ["patient", "user", "reviewed_by"]

    def has_add_permission(self, request):
        return False


@admin.register(ErasureRequest)
class ErasureRequestAdmin(_PatientPartAdmin):
    """Read in the admin: requests are decided and carried out on compliance's erasure pages
    (patients/erasure/), which check legal holds and audit each step."""

    list_display = ["__str__", "patient", "kind", "status", "requested_at", "decided_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["patient", "requested_by", "decided_by"]
    exclude = ["decision_note"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LegalHold)
class LegalHoldAdmin(_PatientPartAdmin):
    """Read in the admin: holds are placed and released on compliance's erasure pages."""

    list_display = ["__str__", "patient", "placed_at", "placed_by_label", "released_at"]
    raw_id_fields = ["patient", "placed_by", "released_by"]
    exclude = ["reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
