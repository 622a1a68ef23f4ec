"""Telehealth join links: a configured provider URL template (TELEHEALTH_URL_TEMPLATE) and an
unguessable room id."""

from __future__ import annotations

import secrets

from django.conf import settings


def telehealth_join_url() -> str:
    """A new room URL, e.g. https://video.example/room/<22 url-safe characters>; carries no PHI."""
    room = secrets.token_urlsafe(16)
    return settings.TELEHEALTH_URL_TEMPLATE.format(room=room)
