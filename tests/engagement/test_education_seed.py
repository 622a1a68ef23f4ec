"""make run's demo data: an education library (en, es) for the demo's conditions, the education rule,
and a history of sends and opens whose pages open."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from engagement import links
from engagement.education.models import EducationItem, EducationSend, EducationVersion
from engagement.education.sanitize import sanitize_html
from engagement.models import EngagementEvent, Rule
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_a_library_and_a_history_of_sends_and_opens() -> None:
    call_command("seed_demo", "--patients", "60", stdout=io.StringIO())
    organization = Organization.objects.get(slug="northside")
    with organization_context(organization):
        items = {i.key: i for i in EducationItem.objects.all()}
        assert {"hypertension-what-to-expect", "type-2-diabetes-what-to-expect", "asthma-using-your-inhaler"} <= set(
            items
        )
        languages = set(EducationVersion.objects.values_list("language", flat=True))
        assert languages == {"en", "es"}
        # Stored bodies are what the sanitiser keeps.
        for version in EducationVersion.objects.all():
            assert sanitize_html(version.body) == version.body
        assert Rule.objects.filter(kind="education", is_active=True).exists()
        sends = list(EducationSend.objects.select_related("message", "patient"))
        assert sends and all(s.message.sent_at for s in sends)
        # In the patient's language (the demo has English and Spanish speakers).
        assert all(s.language == (s.patient.preferred_language or "en") for s in sends)
        opened = EngagementEvent.objects.filter(kind="opened", message__subject_type="education").count()
        assert 0 < opened < len(sends)
        message_id = sends[0].message_id
    token = links.make_token(organization_id=organization.pk, message_id=message_id, action="education")
    assert Client().get(f"/engagement/l/{token}/").status_code == 200
