"""A message's text: its template rendered with the few values a message may carry (first name,
clinic, appointment time and place, signed links), in the patient's language and time zone."""

from __future__ import annotations

from typing import Any

from django.utils import dateformat, translation

from engagement import etiquette, links, selectors, templating
from engagement.delivery.backends import DeliveryError
from engagement.models import ChannelSettings, OutboundMessage
from healthcrm.models import Organization

EDUCATION_SUBJECT = "education"
# Education messages when the clinic wrote no "education" template: no title or topic (an SMS on a
# lock screen must not tell what the patient's condition is), only who sent it and the link.
EDUCATION_DEFAULT = {
    "en": (
        "Information from {clinic}",
        "{clinic}: {first_name}, your care team shared something to read about what to expect: {link}",
    ),
    "es": (
        "Información de {clinic}",
        "{clinic}: {first_name}, su equipo de atención le envía información sobre qué esperar: {link}",
    ),
}


def _education_default(message: OutboundMessage, organization: Organization) -> tuple[str, str]:
    patient = message.patient
    language = (patient.preferred_language or "en").lower().split("-")[0]
    subject, body = EDUCATION_DEFAULT.get(language, EDUCATION_DEFAULT["en"])
    link = links.link_for(organization_id=organization.pk, message_id=message.pk, action="education")
    values = {"clinic": organization.name, "first_name": patient.preferred_name or patient.given_name, "link": link}
    return (subject.format(**values) if message.channel != "sms" else ""), body.format(**values)


def render_message(
    message: OutboundMessage,
    organization: Organization,
    settings_: ChannelSettings,
    *,
    templates: dict[tuple[str, str, str], Any] | None = None,
) -> tuple[str, str]:
    """(subject, body) of a message from its template; staff replies and one-off staff messages carry
    their own body.
    `templates` caches the template lookups of a batch."""
    if message.subject_type == "conversation":
        return "", message.body
    if message.subject_type == "staff_message":
        # A one-off from the record: the staff member's text, saying which clinic it is from.
        if message.channel == "sms":
            return "", f"{organization.name}: {message.body}"
        return f"Message from {organization.name}", message.body
    if message.subject_type == "access_report":
        # The link to the patient's access report (engagement/access_reports): its text is kept on the row.
        if message.channel == "sms":
            return "", f"{organization.name}: {message.body}"
        return f"Your record's access report from {organization.name}", message.body
    patient = message.patient
    key = (message.template_key, message.channel, patient.preferred_language)
    if templates is not None and key in templates:
        template = templates[key]
    else:
        template = selectors.template_for(
            key=message.template_key, channel=message.channel, language=patient.preferred_language
        )
        if templates is not None:
            templates[key] = template
    if template is None and message.subject_type == EDUCATION_SUBJECT:
        return _education_default(message, organization)
    if template is None:
        raise DeliveryError(
            f"No active template '{message.template_key}' for {message.channel}.", permanent=True, code="no_template"
        )
    zone = etiquette.patient_zone(patient, organization)
    context = {
        "first_name": patient.preferred_name or patient.given_name,
        "clinic_name": organization.name,
        "clinic_phone": settings_.contact_phone or organization.phone,
        "unsubscribe_link": links.link_for(
            organization_id=organization.pk, message_id=message.pk, action="unsubscribe"
        ),
    }
    if message.subject_type in ("appointment", selectors.SURVEY_SUBJECT):
        # A survey's subject is the visit it asks about: its date and place may be named.
        appointment = selectors.appointment_get(message.subject_id)
        if appointment is not None:
            local = appointment.starts_at.astimezone(zone)
            with translation.override(template.language.split("-")[0]):
                fmt = "D j M, H:i" if not template.language.startswith("en") else "D M j, g:i A"
                context["appointment_time"] = dateformat.format(local, fmt)
                context["appointment_date"] = dateformat.format(local, "D M j" if fmt.startswith("D M") else "D j M")
            context["location"] = appointment.location.name if appointment.location else ""
            context["telehealth_link"] = appointment.telehealth_url
            actions = ("confirm", "cancel") if message.subject_type == "appointment" else ("survey",)
            for action in actions:
                context[f"{action}_link"] = links.link_for(
                    organization_id=organization.pk, message_id=message.pk, action=action
                )
    if message.subject_type == selectors.WAITLIST_OFFER_SUBJECT:
        # A freed slot offered from the waitlist: its time and place, and the link that takes it.
        offer = selectors.waitlist_offer_get(message.subject_id)
        if offer is not None:
            local = offer.slot.starts_at.astimezone(zone)
            with translation.override(template.language.split("-")[0]):
                fmt = "D j M, H:i" if not template.language.startswith("en") else "D M j, g:i A"
                context["appointment_time"] = dateformat.format(local, fmt)
                context["appointment_date"] = dateformat.format(local, "D M j" if fmt.startswith("D M") else "D j M")
            context["location"] = offer.slot.location.name if offer.slot.location else ""
            context["slot_link"] = links.link_for(organization_id=organization.pk, message_id=message.pk, action="slot")
    if message.subject_type == EDUCATION_SUBJECT:
        context["education_link"] = links.link_for(
            organization_id=organization.pk, message_id=message.pk, action="education"
        )
    if message.subject_type == "questionnaire":
        context["questionnaire_link"] = links.link_for(
            organization_id=organization.pk, message_id=message.pk, action="questionnaire"
        )
    body = templating.render(template.body, context)
    # Collapse blank lines left by empty optional variables (no telehealth link, no location).
    body = "\n".join(line for line in body.splitlines() if line.strip() or not line).strip()
    return templating.render(template.subject, context), body
