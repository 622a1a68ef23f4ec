from typing import Any

from django.contrib import admin

from compliance.access import PHIAdminMixin
from engagement.models import (
    CallLog,
    ChannelSettings,
    Consent,
    ConsentChange,
    ConversationMessage,
    EducationItem,
    EducationVersion,
    MessageTemplate,
    OutboundMessage,
    QuestionnaireResponse,
    Rule,
    SurveyResponse,
)


@admin.register(ChannelSettings)
class ChannelSettingsAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["organization", "sms_enabled", "sms_from_number", "send_rate_per_second"]
    exclude = ["twilio_auth_token"]  # set on the outreach settings page, never shown


@admin.register(OutboundMessage)
class OutboundMessageAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["id", "status", "channel", "rule", "due_at", "attempts", "provider_sid"]
    list_filter = ["status", "channel"]
    exclude = ["to_address", "body"]
    raw_id_fields = ["patient", "rule", "sent_by"]


@admin.register(ConversationMessage)
class ConversationMessageAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["id", "direction", "keyword", "created_at", "read_at"]
    exclude = ["phone", "body"]
    raw_id_fields = ["patient", "outbound", "author"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "template_key", "is_active"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["key", "language", "channel", "is_active"]


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "party", "status", "source", "changed_at", "expires_at"]
    raw_id_fields = ["patient", "evidence_document", "evidence_message"]


@admin.register(CallLog)
class CallLogAdmin(PHIAdminMixin, admin.ModelAdmin):
    list_display = ["id", "recall_key", "outcome", "called_by_label", "called_at"]
    list_filter = ["outcome", "recall_key"]
    exclude = ["note"]
    raw_id_fields = ["patient", "called_by"]


@admin.register(SurveyResponse)
class SurveyResponseAdmin(PHIAdminMixin, admin.ModelAdmin):
    """Read-only: answers come from the patient (SMS reply or link), never typed in by staff."""

    list_display = ["id", "nps", "csat_access", "csat_explain", "channel", "responded_at"]
    list_filter = ["channel"]
    exclude = ["comment"]  # PHI: read on the patient's Communications page, access-logged
    raw_id_fields = ["patient", "appointment", "message", "practitioner", "location", "recovery_task"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(ConsentChange)
class ConsentChangeAdmin(PHIAdminMixin, admin.ModelAdmin):
    """Read-only: the history `consent_set` writes (the patient's Consent tab shows it with notes)."""

    list_display = ["id", "kind", "party", "status", "source", "actor_label", "changed_at", "expires_at"]
    list_filter = ["kind", "status", "source"]
    exclude = ["note"]
    raw_id_fields = ["patient", "actor", "evidence_document", "evidence_message"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


# -- The education library: edited here; bodies are sanitised by the service on every save ---------


class EducationVersionInline(admin.StackedInline):
    model = EducationVersion
    extra = 0
    fields = ["language", "title", "summary", "body", "video_url"]


@admin.register(EducationItem)
class EducationItemAdmin(admin.ModelAdmin):
    list_display = ["key", "format", "reading_level", "is_active"]
    list_filter = ["format", "reading_level", "is_active"]
    search_fields = ["key"]
    inlines = [EducationVersionInline]

    def save_formset(self, request: Any, form: Any, formset: Any, change: bool) -> None:
        """Versions through the service (sanitised), not the formset's plain save."""
        from engagement.education.services import education_version_save

        for obj in formset.deleted_objects:
            obj.delete()
        for version in formset.save(commit=False):
            education_version_save(
                version=version if version.pk else None,
                item=form.instance,
                language=version.language,
                title=version.title,
                summary=version.summary,
                body=version.body,
                video_url=version.video_url,
            )


@admin.register(QuestionnaireResponse)
class QuestionnaireResponseAdmin(PHIAdminMixin, admin.ModelAdmin):
    """Read in the admin (score, band, status); the answers are read on the patient's record."""

    list_display = ["__str__", "patient", "questionnaire", "status", "score", "band", "completed_at"]
    list_filter = ["status", "band"]
    raw_id_fields = ["patient", "message", "observation"]
    exclude = ["resource"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
