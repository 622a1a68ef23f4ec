"""Twilio webhooks: inbound SMS and delivery status callbacks, one URL pair per organization.

Every request is checked against X-Twilio-Signature with the organization's auth token and the
exact public URL Twilio called, rebuilt from PUBLIC_BASE_URL (never from the Host header, which a
caller chooses). A bad or missing signature gets 403 and nothing is written.
"""

from __future__ import annotations

# bandit B406: escape() writes TwiML; nothing parses XML here.
from xml.sax.saxutils import escape  # nosec B406

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from compliance.access import phi_free
from engagement import selectors, services
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.twilio import backend

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def public_url(request: HttpRequest) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + the path and query it requested."""
    base = settings.PUBLIC_BASE_URL
    return base.rstrip("/") + request.get_full_path()


def _twiml(text: str) -> HttpResponse:
    if not text:
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(text)}</Message></Response>'
    return HttpResponse(body, content_type="text/xml")


def _verified(request: HttpRequest, organization: Organization) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not settings.PUBLIC_BASE_URL:
        return False
    token = selectors.channel_settings_get().twilio_auth_token
    if not token:
        return False
    params = {key: request.POST.get(key) for key in request.POST}
    return RequestValidator(token).validate(public_url(request), params, signature)


def _organization(slug: str) -> Organization | None:
    return Organization.objects.filter(slug=slug, is_active=True).first()


@csrf_exempt  # authenticated by the Twilio signature instead
@require_POST
@phi_free  # answers Twilio only; shows nothing to staff
def inbound_sms_view(request: HttpRequest, org_slug: str) -> HttpResponse:
    organization = _organization(org_slug)
    if organization is None:
        return HttpResponseForbidden()
    with organization_context(organization):
        if not _verified(request, organization):
            return HttpResponseForbidden()
        reply = services.inbound_receive(
            from_number=request.POST.get("From", ""),
            body=request.POST.get("Body", ""),
            sid=request.POST.get("MessageSid", "") or request.POST.get("SmsSid", ""),
        )
    return _twiml(reply)


@csrf_exempt
@require_POST
@phi_free
def status_callback_view(request: HttpRequest, org_slug: str) -> HttpResponse:
    organization = _organization(org_slug)
    if organization is None:
        return HttpResponseForbidden()
    with organization_context(organization):
        if not _verified(request, organization):
            return HttpResponseForbidden()
        services.delivery_status_apply(
            sid=request.POST.get("MessageSid", ""),
            status=backend.delivery_status(request.POST.get("MessageStatus", "")),
            error_code=request.POST.get("ErrorCode", ""),
        )
    return HttpResponse(status=204)
