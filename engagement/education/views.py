"""Education pages: the library and its preview (staff, PHI-free), the record's Engagement tab
(what the patient was sent, opened and answered; send an item), and the patient page a link opens.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe

from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import get_object_for_user, require_perm
from compliance.models import AccessAction
from engagement import links, selectors
from engagement.education import selectors as education_selectors
from engagement.education import services as education_services
from engagement.education.forms import EducationSendForm, PreviewForm
from engagement.education.models import EducationItem
from engagement.education.sanitize import sanitize_html
from engagement.models import ChannelSettings, EngagementEventKind, OutboundMessage
from engagement.services import engagement_event_record
from healthcrm.http import TenantRequest, form_add_service_errors
from healthcrm.models import Organization
from patients.care.views import render_patient_tab
from patients.selectors import get_patient_for_user

LIBRARY_PERM = "engagement.view_educationitem"
TAB_PERM = "engagement.view_educationsend"
SEND_PERM = "engagement.add_educationsend"


@staff_view(access=PHI_FREE, perm=LIBRARY_PERM)
def education_library_view(request: TenantRequest) -> HttpResponse:
    """The organization's education items: format, reading level, languages, what they suit."""
    items = list(education_selectors.education_item_list())
    return render(request, "engagement/education/library.html", {"items": items})


@staff_view(access=PHI_FREE, perm=LIBRARY_PERM)
def education_item_view(request: TenantRequest, pk: int) -> HttpResponse:
    """An item as the patient will see it, in the language asked for (`?language=`, with the same
    fallback as a send)."""
    item = get_object_for_user(request, EducationItem.objects.prefetch_related("versions"), pk, LIBRARY_PERM)
    language = PreviewForm(request.GET).language_or("en")
    version = education_selectors.version_for(item, language)
    context = {
        "item": item,
        "version": version,
        "languages": [v.language for v in item.versions.all()],
        "body": mark_safe(sanitize_html(version.body)) if version else "",  # noqa: S308 (sanitised by nh3)  # nosec B308 B703
    }
    return render(request, "engagement/education/item.html", context)


@staff_view(access=AccessAction.VIEW)
def patient_engagement_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    """The record's Engagement tab: every message that carried content (education; questionnaires
    when they join), when it was sent, first opened (and how often) and answered; and a form to
    send a library item through the outbox."""
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, TAB_PERM)
    may_send = request.user.has_perm(SEND_PERM) and patient.is_active
    if request.method == "POST":
        require_perm(request, SEND_PERM)
        form = EducationSendForm(request.POST)
        if form.is_valid():
            try:
                send = education_services.education_send(
                    patient=patient, item=form.cleaned_data["item"], key=form.cleaned_data["key"], actor=request.user
                )
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, _queued_note(send.message))
                return redirect("engagement:patient_engagement", patient_pk=patient.pk)
    else:
        form = EducationSendForm(initial={"key": secrets.token_urlsafe(16)})
    rows = selectors.engagement_events(patient=patient)
    context = {"rows": rows, "send_form": form if may_send else None}
    status = 400 if form.errors else 200
    return render_patient_tab(
        request, patient, "engagement", "engagement/partials/patient_engagement.html", context, status=status
    )


def _queued_note(message: OutboundMessage | None) -> str:
    if message is None:
        return "Education queued."
    channel = message.get_channel_display()
    if message.next_attempt_at <= timezone.now():
        return f"Education queued by {channel.lower()}: it goes now (the daily and weekly caps may hold it back)."
    return f"Education queued by {channel.lower()} for the patient's sending window (quiet hours)."


# -- The patient page: no sign-in, the signed link is the credential ------------------------------

# Link previewers (chat apps, mail scanners) fetch a link before the patient does: their fetch is
# not the patient opening it. Matched on the User-Agent, case-insensitively.
PREVIEW_AGENTS = (
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "whatsapp",
    "telegrambot",
    "discordbot",
    "skypeuripreview",
    "linkedinbot",
    "googlebot",
    "bingbot",
    "bingpreview",
    "outlook",
    "microsoft office",
    "proofpoint",
    "mimecast",
    "barracuda",
)


def is_link_preview(request: HttpRequest) -> bool:
    agent = request.headers.get("User-Agent", "").lower()
    return request.method == "HEAD" or any(name in agent for name in PREVIEW_AGENTS)


def education_page(
    request: HttpRequest, organization: Organization, message: OutboundMessage, claims: links.LinkClaims
) -> HttpResponse:
    """What the education link shows: the item in the language sent, nothing about the patient.
    Opening it records the first open once per message, later opens counted (not previewers')."""
    send = education_selectors.education_send_for_message(message.pk)
    version = education_selectors.version_for(send.item, send.language) if send is not None else None
    if send is None or version is None or message.subject_type != education_selectors.EDUCATION_SUBJECT:
        gone = {"clinic": organization.name, "action": claims.action, "state": "unavailable"}
        return render(request, "engagement/link.html", gone, status=410)
    if not is_link_preview(request):
        engagement_event_record(message=message, kind=EngagementEventKind.OPENED, now=timezone.now())
    context: dict[str, Any] = {
        "clinic": organization.name,
        # Read, never created here (channel_settings_get would write the defaults on a GET).
        "clinic_phone": getattr(ChannelSettings.objects.first(), "contact_phone", "") or organization.phone,
        "item": send.item,
        "version": version,
        "body": mark_safe(sanitize_html(version.body)),  # noqa: S308 (sanitised by nh3)  # nosec B308 B703
    }
    return render(request, "engagement/education/page.html", context)
