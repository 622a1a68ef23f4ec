"""Issue #10 item 5 in real Chromium: a care coordinator opens the care-gap worklist, filters it to
the HbA1c gaps, logs a call (no answer, with a note), sends the recall, and sees both attempts on
the patient's row; a second "Send recall" says it was already sent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from analytics.models import CareGap
from engagement.models import CallLog, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, PatientFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic(transactional_db: None) -> dict[str, Any]:
    organization: Any = OrganizationFactory(slug="north", name="North Clinic", timezone="UTC", require_mfa=False)
    coordinator = UserFactory(username="coord@north.example")
    MembershipFactory(user=coordinator, organization=organization, role="coordinator")
    # Quiet hours off: the recall is scheduled at once whatever the hour of the real clock.
    configure(organization, quiet_start="00:00", quiet_end="00:00")
    with organization_context(organization):
        grace = PatientFactory(given_name="Grace", family_name="Hopper", preferred_channel="sms", timezone="")
        alan = PatientFactory(given_name="Alan", family_name="Turing", preferred_channel="sms", timezone="")
        Rule.objects.create(
            name="HbA1c recall", kind="preventive_recall", template_key="recall_hba1c", params={"recall": "hba1c"}
        )
        fixed = datetime(2020, 1, 2, tzinfo=UTC)
        gap = CareGap.objects.create(
            patient=grace, recall_key="hba1c", period="2020-Q1", opened_on=date(2020, 1, 1), refreshed_at=fixed
        )
        CareGap.objects.create(
            patient=alan, recall_key="annual_wellness", period="2020", opened_on=date(2020, 1, 1), refreshed_at=fixed
        )
    return {"organization": organization, "coordinator": coordinator, "grace": grace, "gap": gap}


def test_coordinator_logs_a_call_and_sends_a_recall_from_the_worklist(live_server: Any, page: Any, clinic) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(clinic["coordinator"].username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")

    # 1. The worklist: both open gaps; filtered to HbA1c, only Grace's.
    page.goto(base + "/analytics/gaps/")
    table = page.get_by_test_id("gap-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Gap").select_option("hba1c")
    page.get_by_role("button", name="Show").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    gap = clinic["gap"]
    row = page.get_by_test_id(f"gap-{gap.pk}")
    expect(row).to_contain_text("Grace Hopper")
    expect(page.get_by_test_id(f"attempts-{gap.pk}")).to_contain_text("None yet")

    # 2. Log call: no answer, with a note; back on the filtered list, the call is on the row.
    row.get_by_text("Log call").click()
    row.get_by_label("Outcome").select_option("no_answer")
    row.get_by_label("Note (optional)").fill("Rang twice, no voicemail box")
    row.get_by_role("button", name="Save call").click()
    expect(page.get_by_text("Call logged.")).to_be_visible()
    assert "kind=hba1c" in page.url
    attempts = page.get_by_test_id(f"attempts-{gap.pk}")
    expect(attempts).to_contain_text("Call: No answer")
    expect(attempts).to_contain_text("Rang twice, no voicemail box")

    # 3. Send recall: queued once; the row shows the message beside the call.
    page.get_by_test_id(f"gap-{gap.pk}").get_by_role("button", name="Send recall").click()
    expect(page.get_by_text("Recall queued")).to_be_visible()
    attempts = page.get_by_test_id(f"attempts-{gap.pk}")
    expect(attempts).to_contain_text("Recall SMS")
    expect(attempts).to_contain_text("Call: No answer")
    page.get_by_test_id(f"gap-{gap.pk}").get_by_role("button", name="Send recall").click()
    expect(page.get_by_text("already sent this period")).to_be_visible()

    # 4. Filter: the gap now has attempts.
    page.goto(base + "/analytics/gaps/?attempts=none")
    expect(page.get_by_test_id(f"gap-{gap.pk}")).to_have_count(0)

    with organization_context(clinic["organization"]):
        [call] = CallLog.objects.all()
        assert (call.patient_id, call.outcome, call.called_by_id) == (
            clinic["grace"].pk,
            "no_answer",
            clinic["coordinator"].pk,
        )
        [message] = OutboundMessage.objects.all()
        assert (message.patient_id, message.subject_type, message.slot[:6]) == (clinic["grace"].pk, "recall", "hba1c:")
