"""The interface status page and the control id search: integrations administrators only (403
for other roles), another organization's message 404, no PHI on the pages, search terms POSTed."""

from __future__ import annotations

from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.models import Hl7Message
from tests.factories import MembershipFactory, UserFactory
from tests.integrations.hl7v2.messages import adt, pid, siu

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(send: Any) -> None:
    send(adt("A04", "MSG0001"))
    send(adt("A08", "MSG0002"))
    send(adt("A04", "MSG0003", pid_segment=pid(mrn="2002", birth="19991399")))
    send(adt("A04", "MSG0004").replace("ADT^A04^ADT_A01", "ORU^R01^ORU_R01"))
    send(siu("S15", "MSG0005", status="Cancelled"))


def test_the_status_page_counts_today_by_type_and_outcome_and_lists_errors_without_phi(
    client_for: Any, admin_user: Any, traffic: None, django_assert_max_num_queries: Any
) -> None:
    client = client_for(admin_user)
    with django_assert_max_num_queries(20):
        page = client.get("/integrations/hl7/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="total-aa">3<' in html  # A04, A08 and the held S15
    assert 'data-testid="total-ae">1<' in html and 'data-testid="total-ar">1<' in html
    assert 'data-testid="held">1<' in html
    assert html.count('data-testid="count-row"') == 4  # ADT^A04, ADT^A08, ORU^R01, SIU^S15
    assert "PID-7" in html and "MSH-9" in html
    for phi in ("TESTPERSON", "JAMIE", "19991399", "191919", "SPRINGFIELD", "5550142"):
        assert phi not in html


def test_the_search_finds_a_message_by_control_id_from_a_post(client_for: Any, admin_user: Any, traffic: None) -> None:
    client = client_for(admin_user)
    assert client.get("/integrations/hl7/search/").status_code == 200

    found = client.post("/integrations/hl7/search/", {"control_id": " MSG0003 "})

    assert found.status_code == 200
    assert found.content.decode().count('data-testid="result-row"') == 1
    assert b"PID-7" in found.content and b"19991399" not in found.content
    none = client.post("/integrations/hl7/search/", {"control_id": "NOPE"})
    assert b'data-testid="no-results"' in none.content
    empty = client.post("/integrations/hl7/search/", {"control_id": ""})
    assert empty.status_code == 400 and b"required" in empty.content


def test_the_message_page_shows_the_log_row_not_the_message(
    client_for: Any, admin_user: Any, org_a: Any, traffic: None
) -> None:
    with organization_context(org_a):
        message = Hl7Message.objects.get(control_id="MSG0003")

    page = client_for(admin_user).get(f"/integrations/hl7/messages/{message.pk}/")

    assert page.status_code == 200
    assert b"AE" in page.content and b"PID-7" in page.content and b"TESTPERSON" not in page.content


@pytest.mark.parametrize("url", ["/integrations/hl7/", "/integrations/hl7/search/"])
def test_other_roles_get_403(client_for: Any, nurse_user: Any, readonly_user: Any, url: str) -> None:
    assert client_for(nurse_user).get(url).status_code == 403
    assert client_for(readonly_user).get(url).status_code == 403


def test_another_organizations_message_is_404_and_its_search_finds_nothing(
    client_for: Any, org_a: Any, org_b: Any, traffic: None
) -> None:
    with organization_context(org_a):
        message = Hl7Message.objects.get(control_id="MSG0001")
    admin_b = UserFactory(username="admin@lake.example")
    MembershipFactory(user=admin_b, organization=org_b, role="admin")
    client = client_for(admin_b)

    assert client.get(f"/integrations/hl7/messages/{message.pk}/").status_code == 404
    assert b'data-testid="no-results"' in client.post("/integrations/hl7/search/", {"control_id": "MSG0001"}).content
    assert b'data-testid="total-aa">0<' in client.get("/integrations/hl7/").content


def test_a_nurse_gets_403_on_a_message_of_her_organization(
    client_for: Any, nurse_user: Any, org_a: Any, traffic: None
) -> None:
    with organization_context(org_a):
        message = Hl7Message.objects.get(control_id="MSG0001")
    assert client_for(nurse_user).get(f"/integrations/hl7/messages/{message.pk}/").status_code == 403
