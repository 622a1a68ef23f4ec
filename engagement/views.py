from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from compliance.access import access_recorder, phi_free
from compliance.decorators import PHI_FREE, staff_view
from compliance.guards import get_object_for_user, require_perm
from compliance.models import AccessAction
from engagement import links, selectors, services, templating
from engagement.education.views import education_page
from engagement.forms import (
    ChannelSettingsForm,
    ConsentRecordForm,
    OutboxFilter,
    ReplyForm,
    RuleForm,
    StaffMessageForm,
    SurveyForm,
    TemplateForm,
)
from engagement.models import ConsentKind, MessageChannel, MessageTemplate, OutboundMessage, OutboxStatus, Rule
from healthcrm.http import TenantRequest, form_add_service_errors, render_partial_or_page
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from patients.care.views import render_patient_tab
from patients.documents.selectors import document_list
from patients.policies import can_see_clinical
from patients.selectors import get_patient_for_user

PAGE_SIZE = 50

# -- Outbox -----------------------------------------------------------------------------------------


@staff_view(access=AccessAction.LIST, perm="engagement.view_outboundmessage")
def outbox_view(request: TenantRequest) -> HttpResponse:
    """The queued and sent messages, and below them what the reminder rules will queue later (a
    reminder is queued an hour before it is due): by default everything, filterable by due date."""
    filters = OutboxFilter(request.GET or None, queryset=selectors.outbox_list(), request=request)
    page = Paginator(filters.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    recorder = access_recorder(request)
    recorder.saw(page.object_list)  # rows name patients
    scheduled_page, scheduled = None, []
    data = filters.form.cleaned_data if filters.is_bound and filters.form.is_valid() else {}
    if not data.get("status") and not data.get("channel"):  # not queued: no status or channel yet
        zone = request.organization.zone
        due_from, due_to = data.get("due_from"), data.get("due_to")
        rows = selectors.outbox_scheduled(
            after=timezone.now() + services.REMINDER_LOOKAHEAD,
            due_from=datetime.combine(due_from, time.min, tzinfo=zone) if due_from else None,
            due_until=(
                datetime.combine(due_to + timedelta(days=1), time.min, tzinfo=zone)
                if due_to and due_to < date.max
                else None
            ),
            rule_id=data["rule"].pk if data.get("rule") else None,
        )
        scheduled_page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("scheduled_page"))
        scheduled = selectors.outbox_scheduled_rows(list(scheduled_page.object_list))
        recorder.saw([row.patient for row in scheduled])
    context = {"filters": filters, "page": page, "scheduled_page": scheduled_page, "scheduled": scheduled}
    return render_partial_or_page(request, "engagement/outbox.html", "engagement/partials/outbox_table.html", context)


# -- Conversations ------------------------------------------------------------------------------


@staff_view(access=AccessAction.LIST, perm="engagement.view_conversationmessage")
def conversation_list_view(request: TenantRequest) -> HttpResponse:
    threads = selectors.conversation_threads()
    access_recorder(request).saw([t.patient for t in threads if t.patient is not None])
    return render(request, "engagement/conversations.html", {"threads": threads})


@staff_view(access=AccessAction.VIEW, perm="engagement.view_conversationmessage")
def conversation_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, patient_pk)
    form = ReplyForm(request.POST or None)
    if request.method == "POST":
        require_perm(request, "engagement.add_conversationmessage")
        if form.is_valid():
            try:
                services.staff_reply(patient=patient, body=form.cleaned_data["body"], actor=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Reply queued.")
                return redirect("engagement:conversation", patient_pk=patient.pk)
    services.conversation_mark_read(patient_id=patient.pk)
    context = {"patient": patient, "conversation": selectors.conversation_for(patient_id=patient.pk), "form": form}
    return render(request, "engagement/conversation.html", context, status=400 if form.errors else 200)


# -- Rules ----------------------------------------------------------------------------------------


@staff_view(access=PHI_FREE, perm="engagement.view_rule")
def rule_list_view(request: TenantRequest) -> HttpResponse:
    return render(request, "engagement/rules.html", {"rules": Rule.objects.all()})


@staff_view(access=PHI_FREE)
def rule_edit_view(request: TenantRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_for_user(request, Rule.objects.all(), pk, "engagement.change_rule") if pk else None
    if rule is None:
        require_perm(request, "engagement.add_rule")
    initial = (
        RuleForm.initial_for(rule)
        if rule
        else {
            "kind": "appointment_reminder",
            "offsets": "72, 24, 2",
            "template_key": "appointment_reminder",
            "is_active": True,
        }
    )
    form = RuleForm(request.POST or None, initial=initial, template_keys=selectors.template_keys())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.rule_save(
                rule=rule,
                name=data["name"],
                kind=data["kind"],
                template_key=data["template_key"],
                offsets_hours=data["offsets"],
                appointment_types=data["appointment_types"],
                is_urgent=data["is_urgent"],
                is_active=data["is_active"],
                params=data["options"],
            )
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, "Rule saved; its messages are being scheduled.")
            return redirect("engagement:rules")
    status = 400 if request.method == "POST" else 200
    return render(request, "engagement/rule_form.html", {"form": form, "rule": rule}, status=status)


# -- Templates ------------------------------------------------------------------------------------


@staff_view(access=PHI_FREE, perm="engagement.view_messagetemplate")
def template_list_view(request: TenantRequest) -> HttpResponse:
    return render(request, "engagement/templates.html", {"templates": MessageTemplate.objects.all()})


SAMPLE = {
    "first_name": "Alex",
    "clinic_name": "",
    "clinic_phone": "(555) 010-0000",
    "appointment_time": "Tue Nov 25, 10:30 AM",
    "appointment_date": "Tue Nov 25",
    "location": "Main Street Clinic",
    "telehealth_link": "https://telehealth.example/room/abc",
    "confirm_link": "https://example.test/e/l/…",
    "cancel_link": "https://example.test/e/l/…",
    "unsubscribe_link": "https://example.test/e/l/…",
    "survey_link": "https://example.test/e/l/…",
    "portal_link": "https://example.test/portal",
}


def _preview(request: TenantRequest, body: str, subject: str, channel: str) -> dict[str, object]:
    sample = {**SAMPLE, "clinic_name": request.organization.name}
    text = templating.render(body, sample)
    return {
        "preview_body": text,
        "preview_subject": templating.render(subject, sample),
        "segments": templating.count_segments(text) if channel == "sms" else None,
        "problems": templating.lint(body=body, channel=channel, subject=subject),
    }


@staff_view(access=PHI_FREE)
def template_edit_view(request: TenantRequest, pk: int | None = None) -> HttpResponse:
    template = (
        get_object_for_user(request, MessageTemplate.objects.all(), pk, "engagement.change_messagetemplate")
        if pk
        else None
    )
    if template is None:
        require_perm(request, "engagement.add_messagetemplate")
    form = TemplateForm(request.POST or None, instance=template)
    if request.method == "POST" and form.is_valid():
        try:
            services.template_save(template=template, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Template saved.")
            return redirect("engagement:templates")
    data = form.data if form.is_bound else form.initial
    context = {
        "form": form,
        "template_obj": template,
        **_preview(
            request, data.get("body", "") or "", data.get("subject", "") or "", data.get("channel", "sms") or "sms"
        ),
    }
    return render(request, "engagement/template_form.html", context, status=400 if form.errors else 200)


@staff_view(access=PHI_FREE)
@require_POST
def template_preview_view(request: TenantRequest) -> HttpResponse:
    """htmx: the live preview, segment counter and lint of the template being edited."""
    if not (
        request.user.has_perm("engagement.add_messagetemplate")
        or request.user.has_perm("engagement.change_messagetemplate")
    ):
        raise PermissionDenied
    context = _preview(
        request, request.POST.get("body", ""), request.POST.get("subject", ""), request.POST.get("channel", "sms")
    )
    return render(request, "engagement/partials/template_preview.html", context)


@staff_view(access=PHI_FREE)
@require_POST
def rule_preview_view(request: TenantRequest) -> HttpResponse:
    """htmx: what the rule's template says, rendered with sample values (English SMS, else email)."""
    if not (request.user.has_perm("engagement.add_rule") or request.user.has_perm("engagement.change_rule")):
        raise PermissionDenied
    key = request.POST.get("template_key", "").strip()
    template = None
    for channel in ("sms", "email"):
        template = selectors.template_for(key=key, channel=channel, language="en") if key else None
        if template is not None:
            break
    if template is None:
        return render(request, "engagement/partials/rule_preview.html", {"missing": key})
    context = {"template_obj": template, **_preview(request, template.body, template.subject, template.channel)}
    return render(request, "engagement/partials/rule_preview.html", context)


# -- Channel settings ---------------------------------------------------------------------------


@staff_view(access=PHI_FREE, perm="engagement.change_channelsettings")
def channel_settings_view(request: TenantRequest) -> HttpResponse:
    current = selectors.channel_settings_get()
    form = ChannelSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        settings_ = form.save(commit=False)
        if form.cleaned_data.get("twilio_auth_token"):
            settings_.twilio_auth_token = form.cleaned_data["twilio_auth_token"]
        else:
            settings_.twilio_auth_token = type(current).objects.get(pk=current.pk).twilio_auth_token
        settings_.full_clean()
        settings_.save()
        messages.success(request, "Outreach settings saved.")
        return redirect("engagement:settings")
    return render(request, "engagement/settings.html", {"form": form}, status=400 if form.errors else 200)


# -- The patient record's Messages tab: history and a one-off SMS or email ----------------------

# Sending a one-off needs the same right as replying in a conversation.
SEND_PERM = "engagement.add_conversationmessage"


@staff_view(access=AccessAction.VIEW)
def patient_communications_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, "engagement.view_outboundmessage")
    if request.method == "POST":
        require_perm(request, SEND_PERM)
        form = StaffMessageForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                message = services.staff_message_send(
                    patient=patient, channel=data["channel"], body=data["body"], key=data["key"], actor=request.user
                )
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, _queued_note(message, patient))
                return redirect("engagement:patient_communications", patient_pk=patient.pk)
    else:
        form = StaffMessageForm(initial={"channel": _default_channel(patient), "key": secrets.token_urlsafe(16)})
    consents = selectors.consents_for([patient.pk])
    channels = [
        {
            "label": label,
            "address": bool(patient.phone_mobile if value == MessageChannel.SMS else patient.email),
            "consent": consents.get((patient.pk, value), ""),
            "problem": services.staff_message_problem(patient=patient, channel=value),
        }
        for value, label in MessageChannel.choices
    ]
    start, end = services.sending_window(patient, selectors.channel_settings_get())
    context = {
        "history": selectors.communication_history(patient=patient),
        "form": form if request.user.has_perm(SEND_PERM) else None,
        "channels": channels,
        "window": (start, end),
        "zone": services.patient_zone(patient, request.organization).key,
    }
    status = 400 if form.errors else 200
    return render_patient_tab(
        request, patient, "messages", "engagement/partials/patient_messages.html", context, status=status
    )


# -- The patient record's Consent tab: current consent per channel, its history, a change --------

CONSENT_CHANGE_PERM = "engagement.change_consent"


@staff_view(access=AccessAction.VIEW)
def patient_consent_view(request: TenantRequest, patient_pk: int) -> HttpResponse:
    """Each kind's current consent (source, date, expiry, evidence) and every change, newest first;
    staff who may change consent record one here, through `consent_set` (a channel opt-out cancels
    the patient's pending messages on that channel)."""
    patient = get_patient_for_user(request, patient_pk)
    require_perm(request, "engagement.view_consent")
    may_record = request.user.has_perm(CONSENT_CHANGE_PERM)
    parties = selectors.consent_parties()
    documents = {d.pk: d for d in document_list(patient=patient)} if can_see_clinical(request.user) else {}
    inbound = {m.pk: m for m in selectors.consent_evidence_messages(patient=patient)}
    zone = request.organization.zone
    form = ConsentRecordForm(
        request.POST if request.method == "POST" else None,
        parties=sorted(parties.items(), key=lambda item: item[1]),
        documents=[(pk, f"{d.title} ({d.get_kind_display()}, {d.created_at:%Y-%m-%d})") for pk, d in documents.items()],
        patient_messages=[
            (pk, f"{m.created_at.astimezone(zone):%Y-%m-%d %H:%M}: {m.keyword or m.body[:40]}")
            for pk, m in inbound.items()
        ],
        today=timezone.now().astimezone(zone).date(),
    )
    if request.method == "POST":
        require_perm(request, CONSENT_CHANGE_PERM)
        if form.is_valid():
            data = form.cleaned_data
            expires_on = data["expires_on"]
            try:
                services.consent_set(
                    patient=patient,
                    kind=data["kind"],
                    party=data["party"],
                    status=data["status"],
                    source=data["source"],
                    # Valid through the chosen day, in the organization's zone.
                    expires_at=datetime.combine(expires_on + timedelta(days=1), time(0), tzinfo=zone)
                    if expires_on
                    else None,
                    evidence_document=documents.get(data["evidence_document"]),
                    evidence_message=inbound.get(data["evidence_message"]),
                    actor=request.user,
                    note=data["note"].strip(),
                )
            except ValidationError as exc:
                form_add_service_errors(form, exc)
            else:
                messages.success(request, f"{ConsentKind(data['kind']).label} consent recorded.")
                return redirect("engagement:patient_consent", patient_pk=patient.pk)
    history = selectors.consent_history(patient=patient)
    for change in history:
        change.party_label = parties.get(change.party, change.party)  # type: ignore[attr-defined]
    access_recorder(request).saw(history)
    context = {
        "kinds": selectors.consent_kinds(patient=patient, party_labels=parties),
        "history": history,
        "history_limit": selectors.HISTORY_LIMIT,
        "consent_form": form if may_record else None,
        "can_download": can_see_clinical(request.user),
    }
    status = 400 if form.errors else 200
    return render_patient_tab(
        request, patient, "consent", "engagement/partials/patient_consent.html", context, status=status
    )


def _default_channel(patient: Any) -> str:
    """The channel the form starts on: the patient's preference when it is SMS or email."""
    preference = patient.preferred_channel
    if preference in MessageChannel.values:
        return str(preference)
    return MessageChannel.SMS if patient.phone_mobile or not patient.email else MessageChannel.EMAIL


def _queued_note(message: OutboundMessage, patient: Any) -> str:
    channel = message.get_channel_display()
    if message.status != OutboxStatus.PENDING or message.next_attempt_at <= timezone.now():
        return f"{channel} queued: it goes now (the daily and weekly caps may hold it back)."
    at = message.next_attempt_at.astimezone(services.patient_zone(patient, patient.organization))
    return f"{channel} queued for {at:%a %d %b, %H:%M} (the patient's quiet hours)."


# -- Patient links: no sign-in, signed token, no PHI shown ----------------------------------------


@csrf_exempt  # no session: the signed token is the credential, and the action needs a POST
@phi_free
def patient_link_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (and uses nothing: link previewers fetch GETs); POST acts once. Gone links answer 410."""
    now = timezone.now()
    try:
        claims = links.read_token(token, now=now)
    except signing.SignatureExpired:
        return render(request, "engagement/link.html", {"state": "expired"}, status=410)
    except signing.BadSignature:
        # Altered or mistyped: a page a patient understands (still a 404), nothing written.
        return render(request, "engagement/link.html", {"state": "invalid"}, status=404)
    organization = Organization.objects.filter(pk=claims.organization_id, is_active=True).first()
    if organization is None:
        raise Http404("No such link.")
    with organization_context(organization):
        message = (
            selectors.outbox_list()
            .filter(pk=claims.message_id, status__in=(OutboxStatus.SENT, OutboxStatus.DELIVERED, OutboxStatus.SENDING))
            .first()
        )
        if message is None:
            raise Http404("No such link.")
        if claims.action == "survey":
            return _survey_link(request, organization, message, claims)
        if claims.action == "slot":
            return _slot_link(request, organization, message, claims)
        if claims.action == "education":
            return education_page(request, organization, message, claims)
        if claims.action == "questionnaire":
            from engagement.questionnaires.views import questionnaire_link

            return questionnaire_link(request, organization, message, claims)
        if request.method == "POST":
            state = services.link_use(message=message, claims=claims, now=now)
        else:
            state = services.link_state(message=message, claims=claims, now=now)
        context = {"clinic": organization.name, "action": claims.action, "state": state}
        status = 410 if state in ("used", "unavailable", "expired") else 200
        return render(request, "engagement/link.html", context, status=status)


# What the slot page says after each outcome, and its status code (gone pages answer 410).
_SLOT_GONE = {"missed", "expired", "closed", "unavailable"}


def _slot_link(
    request: HttpRequest, organization: Organization, message: OutboundMessage, claims: links.LinkClaims
) -> HttpResponse:
    """A freed slot offered from the waitlist: GET shows its time and place with "Take this slot"
    (and takes nothing); POST takes it if nobody was first. Only the clinic, the time and the
    place are shown: the link may be opened by anyone holding the phone."""
    now = timezone.now()
    if request.method == "POST":
        state, offer = services.slot_link_use(message=message, claims=claims, now=now)
    else:
        state, offer = services.slot_link_state(message=message, claims=claims, now=now)
    when = where = ""
    if offer is not None:
        slot = offer.slot
        zone = slot.location.zone if slot.location is not None else organization.zone
        local = slot.starts_at.astimezone(zone)
        when = f"{local:%A} {local.day} {local:%B}, {local:%H:%M}"
        where = slot.location.name if slot.location is not None else ""
    context = {"clinic": organization.name, "state": state, "when": when, "where": where}
    status = 410 if state in _SLOT_GONE else 200
    return render(request, "engagement/slot_offer.html", context, status=status)


def _survey_link(
    request: HttpRequest, organization: Organization, message: OutboundMessage, claims: links.LinkClaims
) -> HttpResponse:
    """The survey form: GET shows it (records nothing), a valid POST records the answers once, an
    invalid one shows the form again with its errors. Answered or expired surveys answer 410."""
    now = timezone.now()
    form = SurveyForm(request.POST if request.method == "POST" else None)
    state = services.survey_link_state(message=message, claims=claims, now=now)
    if state == "ask" and form.is_bound and form.is_valid():
        data = form.cleaned_data
        answers = services.Answers(
            nps=data["nps"], csat_access=data["csat_access"], csat_explain=data["csat_explain"], comment=data["comment"]
        )
        state = services.survey_link_use(message=message, claims=claims, answers=answers, now=now)
    if state == "ask":
        context = {"clinic": organization.name, "form": form}
        return render(request, "engagement/survey.html", context, status=400 if form.errors else 200)
    context = {"clinic": organization.name, "action": claims.action, "state": state}
    status = 410 if state in ("used", "unavailable", "expired") else 200
    return render(request, "engagement/link.html", context, status=status)
