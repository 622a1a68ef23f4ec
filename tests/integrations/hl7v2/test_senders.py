"""The sender registry: routing reads exactly one row across organizations, credentials are kept
as digests, and a facility/application pair routes to one organization only."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from healthcrm.tenancy import organization_context
from integrations.admin import Hl7SenderAdminForm
from integrations.hl7v2.models import Hl7Sender, sender_lookup_key
from integrations.hl7v2.selectors import sender_route_get
from tests.integrations.hl7v2.messages import APPLICATION, FACILITY, SECRET

pytestmark = pytest.mark.django_db


def test_with_no_organization_the_sender_table_shows_only_the_row_whose_key_is_set(sender: Any, org_b: Any) -> None:
    from integrations.hl7v2.services import hl7_sender_register

    with organization_context(org_b):
        hl7_sender_register(name="South", sending_facility="SOUTH", sending_application="PM", secret="x" * 20)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM integrations_hl7sender")
        assert cursor.fetchone()[0] == 0  # no organization, no key: nothing
        cursor.execute("SELECT set_config('app.hl7_sender_key', %s, true)", [sender.lookup_key])
        cursor.execute("SELECT id FROM integrations_hl7sender")
        assert cursor.fetchall() == [(sender.pk,)]

    found = sender_route_get(sender_lookup_key(f" {FACILITY.lower()} ", APPLICATION))
    assert found is not None and found.pk == sender.pk and found.organization_id == sender.organization_id
    assert sender_route_get(sender_lookup_key("NOWHERE", APPLICATION)) is None


def test_the_secret_is_kept_as_a_digest_only(sender: Any, org_a: Any) -> None:
    with organization_context(org_a):
        row = Hl7Sender.objects.values().get(pk=sender.pk)
    assert SECRET not in str(row) and len(row["secret_digest"]) == 64


def test_the_admin_form_refuses_a_pair_registered_in_another_organization(sender: Any, org_b: Any) -> None:
    data = {"name": "Copy", "sending_facility": FACILITY, "sending_application": APPLICATION.lower()}
    data |= {"new_secret": "another-secret-of-20-chars", "default_minutes": 30, "is_active": True}
    with organization_context(org_b):
        form = Hl7SenderAdminForm(data=data)
        assert not form.is_valid()
    assert "already registered" in str(form.errors)


def test_the_admin_form_needs_a_credential(org_a: Any) -> None:
    data = {"name": "New", "sending_facility": "EAST", "sending_application": "PM", "default_minutes": 30}
    with organization_context(org_a):
        form = Hl7SenderAdminForm(data=data)
        assert not form.is_valid()
        assert "shared secret or a client certificate" in str(form.errors)
        form = Hl7SenderAdminForm(data={**data, "new_secret": "a-long-enough-secret"})
        assert form.is_valid(), form.errors
        saved = form.save()
    assert saved.secret_digest and saved.lookup_key == sender_lookup_key("EAST", "PM")
