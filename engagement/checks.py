"""Deployment checks of outreach (`manage.py check --deploy`): the settings that decide whether a
text message really leaves. HEALTHCRM_ENV=production refuses to start without them (settings.py);
these say the same of any other environment checked for deployment."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def outreach_deploy_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    backend, sink = settings.ENGAGEMENT_SMS_BACKEND, settings.ENGAGEMENT_SINK_BACKEND
    if backend == sink:
        found.append(
            checks.Warning(
                "SMS_BACKEND is the development sink: text messages are marked sent and never leave.",
                hint="Set TWILIO_ENABLED=true (or SMS_BACKEND=twilio) and each clinic's account in Outreach settings.",
                id="engagement.W001",
            )
        )
    if not str(settings.PUBLIC_BASE_URL).startswith("https://"):
        found.append(
            checks.Warning(
                "PUBLIC_BASE_URL is not an https:// address: Twilio's webhook signatures (STOP included) and "
                "patient links will not match the site.",
                hint="Set PUBLIC_BASE_URL to the address Twilio and patients reach, exactly as in the Twilio console.",
                id="engagement.W002",
            )
        )
    return found
