"""Questionnaire pages: the definitions (list, import), the record's Questionnaires tab (responses,
"Send questionnaire"), and the patient's form behind the signed link (no sign-in, first name only)."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from compliance.access import access_recorder
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import require_perm
from compliance.models import AccessAction
from engagement import links
from engagement.education.views import is_link_preview
from engagement.models import EngagementEventKind, OutboundMessage, OutboxStatus
from engagement.questionnaires import scoring, selectors, services
from engagement.questionnaires.forms import AnswersForm, ImportForm, SendForm
from engagement.services import engagement_event_record
from healthcrm.http import TenantRequest, form_add_service_errors
from healthcrm.models import Organization
from patients.care.views import render_patient_tab
from patients.policies import require_clinical
from patients.selectors import get_patient_for_user

SEND_PERM = "engagement.add_questionnaireresponse"
IMPORT_PERM = "engagement.add_questionnaire"


@staff_view(access=PHI_FREE, perm="engagement.view_questionnaire")
def questionnaire_list_view(request: TenantRequest) -> HttpResponse:
    """The organization's questionnaires, and (for those who may) the import of a FHIR definition."""
    may_import = request.user.has_perm(IMPORT_PERM)
    form = ImportForm(request.POST or None, request.FILES or None) if request.method == "POST" else ImportForm()
    if request.method == "POST":
        require_perm(request, IMPORT_PERM)
        if form.is_valid():
            try:
                imported = services.questionnaire_import(data=form.cleaned_data["json"], key=form.cleaned_data["key"])
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, f"Questionnaire “{imported.title}” imported.")
                return redirect("engagement:questionnaires")
    context = {"questionnaires": selectors.questionnaire_list(), "form": form if may_import else None}
    return render(request, "engagement/questionnaires.html", context, status=400 if form.errors else 200)


@staff_view(access=AccessAction.VIEW)
def patient_questionnaires_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    """The record's Questionnaires tab: the patient's responses (score, band, status) and, for
    nurses and providers, "Send questionnaire" (through the outbox: consent and quiet hours apply)."""
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, "engagement.view_questionnaireresponse")
    require_clinical(request, patient)
    may_send = request.user.has_perm(SEND_PERM) and patient.is_active
    if request.method == "POST":
        require_perm(request, SEND_PERM)
        form = SendForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                message = services.questionnaire_send(
                    patient=patient,
                    questionnaire=data["questionnaire"],
                    channel=data["channel"],
                    key=data["key"],
                    actor=request.user,
                )
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, _queued_note(message))
                return redirect("engagement:patient_questionnaires", patient_pk=patient.pk)
    else:
        form = SendForm(initial={"key": secrets.token_urlsafe(16)})
    responses = list(selectors.responses_for_patient(patient_id=patient.pk))
    access_recorder(request).saw(responses)
    context = {"responses": responses, "send_form": form if may_send else None}
    return render_patient_tab(
        request,
        patient,
        "questionnaires",
        "engagement/partials/patient_questionnaires.html",
        context,
        status=400 if form.errors else 200,
    )


def _queued_note(message: OutboundMessage) -> str:
    channel = message.get_channel_display()
    if message.status != OutboxStatus.PENDING or message.next_attempt_at <= timezone.now():
        return f"Questionnaire queued by {channel}: it goes now."
    return f"Questionnaire queued by {channel}: it goes after the patient's quiet hours."


# -- The patient's form (called by engagement.views.patient_link_view for "questionnaire" links) --


def questionnaire_link(
    request: HttpRequest, organization: Organization, message: OutboundMessage, claims: links.LinkClaims
) -> HttpResponse:
    """GET shows the form with the answers saved so far (writes only the engagement event "opened",
    first open once, later ones counted, link previewers' not); POST "save" keeps the answers, POST
    "submit" completes the response once. A refused answer re-renders the form (400)
    naming the question; answered, expired or withdrawn links answer 410 with nothing shown."""
    now = timezone.now()
    state = services.questionnaire_link_state(message=message, claims=claims, now=now)
    if state != "ask":
        return _link_page(request, organization, state)
    questionnaire = services.questionnaire_of(message)
    assert questionnaire is not None
    if request.method == "GET" and not is_link_preview(request):
        engagement_event_record(message=message, kind=EngagementEventKind.OPENED, now=now)
    response = selectors.response_for_message(message_id=message.pk)
    saved = services.answers_of(response)
    form = AnswersForm(
        request.POST if request.method == "POST" else None, questionnaire=questionnaire, initial_answers=saved
    )
    just_saved = False
    if request.method == "POST" and form.is_valid():
        submit = request.POST.get("action") != "save"
        try:
            result = services.questionnaire_answers_save(
                message=message, claims=claims, answers=form.answers(), submit=submit, now=now
            )
        except ValidationError as exc:
            form_add_service_errors(form, exc)
        else:
            if result.state == "done":
                assert result.response is not None
                options = services.questionnaire_options(organization)
                context = {
                    "clinic": organization.name,
                    "alerted": result.response.alerted,
                    "crisis_text": options.crisis_text,
                }
                return render(request, "engagement/questionnaire_done.html", context)
            if result.state != "saved":
                return _link_page(request, organization, result.state)
            just_saved = True
    context = {
        "clinic": organization.name,
        "first_name": message.patient.preferred_name or message.patient.given_name,
        "title": questionnaire.title,
        "intro": scoring.intro_texts(questionnaire.resource),
        "form": form,
        "just_saved": just_saved,
        "crisis_text": services.questionnaire_options(organization).crisis_text,
    }
    return render(request, "engagement/questionnaire_form.html", context, status=400 if form.errors else 200)


def _link_page(request: HttpRequest, organization: Organization, state: str) -> HttpResponse:
    context = {"clinic": organization.name, "action": "questionnaire", "state": state}
    return render(request, "engagement/link.html", context, status=410)
