"""Default outreach set-up for every organization: templates (en, es), rules, consents, and a few
demo outbox rows (reminders for upcoming appointments), so `make run` shows the outbox at work.

    manage.py seed_engagement          (seed_demo may call seed_organization(organization))
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from engagement import services
from engagement.models import Consent, ConsentSource, MessageTemplate, Rule
from engagement.recalls import RECALLS
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

TEMPLATES = {
    ("appointment_reminder", "en", "sms"): (
        "",
        "Hi {{ first_name }}, a reminder from {{ clinic_name }}: your appointment is {{ appointment_time }}. "
        "Reply C to confirm or R to reschedule.\n{{ telehealth_link }}",
    ),
    ("appointment_reminder", "es", "sms"): (
        "",
        "Hola {{ first_name }}, le recordamos de {{ clinic_name }}: su cita es el {{ appointment_time }}. "
        "Responda C para confirmar o R para cambiarla.\n{{ telehealth_link }}",
    ),
    ("appointment_reminder", "en", "email"): (
        "Your appointment at {{ clinic_name }}",
        "Dear {{ first_name }},\n\nYour appointment is {{ appointment_time }} at {{ location }}.\n{{ telehealth_link }}\n\n"  # noqa: E501
        "Confirm: {{ confirm_link }}\nCancel: {{ cancel_link }}\n\nUnsubscribe: {{ unsubscribe_link }}",
    ),
    ("appointment_reminder", "es", "email"): (
        "Su cita en {{ clinic_name }}",
        "Estimado/a {{ first_name }}:\n\nSu cita es el {{ appointment_time }} en {{ location }}.\n{{ telehealth_link }}\n\n"  # noqa: E501
        "Confirmar: {{ confirm_link }}\nCancelar: {{ cancel_link }}\n\nDarse de baja: {{ unsubscribe_link }}",
    ),
    ("lab_results", "en", "sms"): (
        "",
        "Hi {{ first_name }}, new results from {{ clinic_name }} are available. Please sign in to see them.",
    ),
    ("lab_results", "es", "sms"): (
        "",
        "Hola {{ first_name }}, hay nuevos resultados de {{ clinic_name }}. Inicie sesión para verlos.",
    ),
    ("care_plan_update", "en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} updated your care plan. Please sign in to see it.",
    ),
    ("care_plan_update", "es", "sms"): (
        "",
        "Hola {{ first_name }}, {{ clinic_name }} actualizó su plan de cuidado. Inicie sesión para verlo.",
    ),
    ("post_visit", "en", "sms"): (
        "",
        "Hi {{ first_name }}, thank you for visiting {{ clinic_name }}. Questions? Call {{ clinic_phone }}.",
    ),
    ("post_visit", "es", "sms"): (
        "",
        "Hola {{ first_name }}, gracias por visitar {{ clinic_name }}. ¿Preguntas? Llame al {{ clinic_phone }}.",
    ),
    ("medication_refill", "en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} here: a prescription refill is due soon. "
        "Questions? Call {{ clinic_phone }}.",
    ),
    ("medication_refill", "es", "sms"): (
        "",
        "Hola {{ first_name }}, le escribe {{ clinic_name }}: pronto le toca resurtir una receta. "
        "¿Preguntas? Llame al {{ clinic_phone }}.",
    ),
    ("recall_hba1c", "en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} here: you are due for a routine lab check. "
        "Call {{ clinic_phone }} to book.",
    ),
    ("recall_hba1c", "es", "sms"): (
        "",
        "Hola {{ first_name }}, le escribe {{ clinic_name }}: le toca un análisis de rutina. "
        "Llame al {{ clinic_phone }} para agendar.",
    ),
    ("recall_annual_wellness", "en", "sms"): (
        "",
        "Hi {{ first_name }}, it is time for your annual wellness visit at {{ clinic_name }}. "
        "Call {{ clinic_phone }} to book.",
    ),
    ("recall_annual_wellness", "es", "sms"): (
        "",
        "Hola {{ first_name }}, es hora de su visita anual de bienestar en {{ clinic_name }}. "
        "Llame al {{ clinic_phone }} para agendar.",
    ),
    ("recall_flu_shot", "en", "sms"): (
        "",
        "Hi {{ first_name }}, flu season is here: {{ clinic_name }} offers flu shots. Call {{ clinic_phone }}.",
    ),
    ("medication_adherence", "en", "sms"): (
        "",
        "Hi {{ first_name }}, your daily reminder from {{ clinic_name }}: time for your medicine. Reply STOP to stop.",
    ),
    ("medication_adherence", "es", "sms"): (
        "",
        "Hola {{ first_name }}, su recordatorio diario de {{ clinic_name }}: es hora de su medicina. "
        "Responda STOP para no recibirlo.",
    ),
    ("recall_flu_shot", "es", "sms"): (
        "",
        "Hola {{ first_name }}, llegó la temporada de gripe: {{ clinic_name }} ofrece vacunas. "
        "Llame al {{ clinic_phone }}.",
    ),
    # Post-visit satisfaction survey: a bare 0-10 reply is the NPS answer; the link asks three questions.
    ("satisfaction_survey", "en", "sms"): (
        "",
        "Hi {{ first_name }}, thank you for visiting {{ clinic_name }}. How likely are you to recommend us "
        "to a friend? Reply 0-10 (10 = very likely), or answer 3 short questions: {{ survey_link }}",
    ),
    ("satisfaction_survey", "es", "sms"): (
        "",
        "Hola {{ first_name }}, gracias por visitar {{ clinic_name }}. ¿Nos recomendaría a un amigo? "
        "Responda de 0 a 10 (10 = sin duda), o conteste 3 preguntas breves: {{ survey_link }}",
    ),
    ("satisfaction_survey", "en", "email"): (
        "How was your visit to {{ clinic_name }}?",
        "Dear {{ first_name }},\n\nThank you for visiting {{ clinic_name }} on {{ appointment_date }}. "
        "How likely are you to recommend us to a friend or family member, from 0 to 10? Three short "
        "questions, one minute:\n{{ survey_link }}\n\n"
        "Unsubscribe: {{ unsubscribe_link }}",
    ),
    ("satisfaction_survey", "es", "email"): (
        "¿Cómo fue su visita a {{ clinic_name }}?",
        "Estimado/a {{ first_name }}:\n\nGracias por visitar {{ clinic_name }} el {{ appointment_date }}. "
        "Del 0 al 10, ¿con qué probabilidad nos recomendaría a un amigo o familiar? Conteste tres preguntas "
        "breves aquí:\n{{ survey_link }}\n\nDarse de baja: {{ unsubscribe_link }}",
    ),
    # A freed slot offered from the waitlist: time, clinic and the link that takes it, nothing else.
    ("waitlist_offer", "en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} has an earlier visit free: {{ appointment_time }}. "
        "First to confirm gets it: {{ slot_link }}",
    ),
    ("waitlist_offer", "es", "sms"): (
        "",
        "Hola {{ first_name }}, {{ clinic_name }} tiene una cita libre antes: {{ appointment_time }}. "
        "Es para quien confirme primero: {{ slot_link }}",
    ),
    ("waitlist_offer", "en", "email"): (
        "An earlier visit at {{ clinic_name }}",
        "Dear {{ first_name }},\n\nAn earlier visit has opened up at {{ clinic_name }}: {{ appointment_time }}, "
        "{{ location }}. It goes to the first person who takes it:\n{{ slot_link }}\n\n"
        "Unsubscribe: {{ unsubscribe_link }}",
    ),
    ("recall_mammography", "en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} here: you are due for a routine screening. "
        "Call {{ clinic_phone }} to book.",
    ),
    ("recall_mammography", "es", "sms"): (
        "",
        "Hola {{ first_name }}, le escribe {{ clinic_name }}: le toca una revisión de rutina. "
        "Llame al {{ clinic_phone }} para agendar.",
    ),
}

RULES: list[dict[str, Any]] = [
    {
        "name": "Appointment reminders",
        "kind": "appointment_reminder",
        "template_key": "appointment_reminder",
        "offsets_hours": [72, 24, 2],
        "is_urgent": True,
    },
    {"name": "Post-visit follow-up", "kind": "post_visit", "template_key": "post_visit", "params": {"hours_after": 24}},
    {"name": "Lab results available", "kind": "lab_results", "template_key": "lab_results"},
    {"name": "Care plan updated", "kind": "care_plan_update", "template_key": "care_plan_update"},
    # Sent when scheduling offers a freed slot to the waitlist (not urgent: quiet hours and caps apply).
    {"name": "Waitlist offers", "kind": "waitlist_offer", "template_key": "waitlist_offer"},
    {
        "name": "Medication refill due",
        "kind": "medication_refill",
        "template_key": "medication_refill",
        "params": {"days_before": 7},
    },
    # One survey per completed visit, two hours after it, not after three days (caps apply).
    {
        "name": "Satisfaction survey",
        "kind": "survey",
        "template_key": "satisfaction_survey",
        "params": {"delay_hours": 2, "max_age_days": 3},
    },
    # Sent only to patients who opted in to it (a daily message), at their chosen time.
    {"name": "Daily medication reminder", "kind": "adherence", "template_key": "medication_adherence"},
    *(
        {
            "name": recall.name,
            "kind": "preventive_recall",
            "template_key": recall.template_key,
            "params": {"recall": key},
        }
        for key, recall in RECALLS.items()
    ),
]


def seed_organization(organization: Organization) -> int:
    """Idempotent: templates and rules by key/name; returns how many outbox rows were offered."""
    with organization_context(organization):
        for (key, language, channel), (subject, body) in TEMPLATES.items():
            existing = MessageTemplate.objects.filter(key=key, language=language, channel=channel).first()
            if existing is None:
                services.template_save(key=key, language=language, channel=channel, subject=subject, body=body)
        rules = []
        for spec in RULES:
            rule = Rule.objects.filter(name=spec["name"]).first()
            if rule is None:
                rule = Rule(**spec)
                rule.full_clean()
                rule.save()
            rules.append(rule)
        from engagement.questionnaires.services import questionnaire_defaults_install

        questionnaire_defaults_install()  # PHQ-9, GAD-7, the medication check, and their templates
        from patients.models import Patient

        for patient in Patient.objects.filter(preferred_channel__in=["sms", "email"])[:20]:
            for channel in ("sms", "email"):
                if not Consent.objects.filter(patient=patient, kind=channel).exists():
                    services.consent_set(
                        patient=patient, channel=channel, status="opted_in", source=ConsentSource.INTAKE
                    )
        # Demo rows: reminders for the appointments of the next three days (not sent in advance).
        offered = 0
        for hours_ahead in (0, 24, 48):
            offered += services.rule_materialize(rule=rules[0], now=timezone.now() + timedelta(hours=hours_ahead))
        return offered


class Command(BaseCommand):
    help = "Default outreach templates (en, es), rules, consents and demo reminders for every organization."

    def handle(self, *args: Any, **options: Any) -> None:
        for organization in Organization.objects.filter(is_active=True):
            offered = seed_organization(organization)
            self.stdout.write(f"{organization.slug}: outreach seeded ({offered} reminder rows offered)")
