"""The device endpoint: POST one FHIR Observation with `Authorization: Bearer <device token>`."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from compliance.access import phi_free
from healthcrm.tenancy import organization_context
from integrations.devices.ratelimit import device_rate_hit
from integrations.devices.services import (
    DeviceReadingError,
    device_reading_record,
    device_token_check,
    device_token_organization,
)

MAX_BODY = 64 * 1024


def _error(status: int, field: str, reason: str) -> JsonResponse:
    # A FHIR OperationOutcome naming the element; never echoes values.
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": {400: "invalid", 429: "throttled"}.get(status, "security"),
                "diagnostics": reason,
                "expression": [field],
            }
        ],
    }
    return JsonResponse(outcome, status=status, content_type="application/fhir+json")


@phi_free  # answers with ids and alert counts only
@csrf_exempt  # token-authenticated machine endpoint, no cookies
@require_POST
def device_observation_view(request: HttpRequest) -> HttpResponse:
    if not request.is_secure() and settings.DEVICE_ENDPOINT_REQUIRE_HTTPS:
        return _error(403, "request", "HTTPS is required")
    auth = request.headers.get("Authorization", "")
    clear = auth[7:].strip() if auth.startswith("Bearer ") else ""
    organization = device_token_organization(clear) if clear else None
    if organization is None:
        return _error(401, "Authorization", "a valid device token is required")
    if len(request.body) > MAX_BODY:
        return _error(413, "body", "a reading is at most 64 KB")
    try:
        resource = json.loads(request.body)
    except (ValueError, RecursionError):
        return _error(400, "body", "not JSON")
    with organization_context(organization):
        token = device_token_check(clear)
        if token is None:
            return _error(401, "Authorization", "a valid device token is required")
        retry_after = device_rate_hit(token.token_hash)
        if retry_after:
            response = _error(429, "request", "too many readings from this device; try again later")
            response["Retry-After"] = str(retry_after)
            return response
        try:
            reading = device_reading_record(token=token, resource=resource)
        except DeviceReadingError as exc:
            return _error(exc.status, exc.field, exc.reason)
    body = {"observation_id": reading.observation.pk, "alerts": len(reading.alerts), "created": reading.created}
    return JsonResponse(body, status=201 if reading.created else 200)
