"""Issue #11 item 9: the rule editor for clinic admins. A template chosen from the clinic's own
(a key that does not exist is refused), appointment types from the list, each kind's options as
labelled fields (no raw JSON), and a preview that shows the template and wraps."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from engagement.models import Rule
from engagement.services import rule_save, template_save
from healthcrm.tenancy import organization_context
from tests.engagement.conftest import configure
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

REMINDER = {"name": "Reminders", "kind": "appointment_reminder", "offsets": "72, 24, 2", "is_active": "on"}


def test_template_is_chosen_from_the_clinics_templates_and_an_unknown_key_is_refused(
    client_for, admin_user, org_a, org_b
) -> None:
    configure(org_a)
    with organization_context(org_b):  # another clinic's template is not offered
        template_save(key="other_clinic_only", language="en", channel="sms", body="Hi {{ first_name }}")
    client = client_for(admin_user)
    form = client.get("/engagement/rules/new/").content.decode()
    assert '<select name="template_key"' in form
    assert '<option value="appointment_reminder" selected>' in form and '<option value="lab_results">' in form
    assert "other_clinic_only" not in form
    for key in ("nope", "other_clinic_only"):
        response = client.post("/engagement/rules/new/", {**REMINDER, "template_key": key})
        assert response.status_code == 400
        assert "Choose one of this clinic&#x27;s templates" in response.content.decode()
    with organization_context(org_a):
        assert not Rule.objects.exists()


def test_appointment_types_are_ticked_from_the_list(client_for, admin_user, org_a) -> None:
    configure(org_a)
    client = client_for(admin_user)
    form = client.get("/engagement/rules/new/").content.decode()
    assert 'type="checkbox" name="appointment_types" value="follow_up"' in form and "Annual wellness visit" in form
    bad = client.post(
        "/engagement/rules/new/", {**REMINDER, "template_key": "appointment_reminder", "appointment_types": ["x"]}
    )
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()
    ok = client.post(
        "/engagement/rules/new/",
        {**REMINDER, "template_key": "appointment_reminder", "appointment_types": ["follow_up", "annual"]},
    )
    assert ok.status_code == 302
    with organization_context(org_a):
        rule = Rule.objects.get()
    assert sorted(rule.appointment_types) == ["annual", "follow_up"]
    edit = client.get(f"/engagement/rules/{rule.pk}/").content.decode()
    assert 'value="annual" id="id_appointment_types_2" checked' in edit.replace("  ", " ") or (
        'value="annual"' in edit and edit.count("checked") >= 2
    )


def test_options_are_a_form_per_kind_not_json(client_for, admin_user, org_a) -> None:
    configure(org_a)
    client = client_for(admin_user)
    form = client.get("/engagement/rules/new/").content.decode()
    assert 'name="options"' not in form and "null" not in form
    assert "Extra reminder when the no-show risk is at least (%)" in form
    assert 'name="medication_refill-days_before"' in form and 'name="preventive_recall-recall"' in form
    assert "Flu shot each autumn" in form  # recalls by name, not key
    response = client.post(
        "/engagement/rules/new/",
        {
            **REMINDER,
            "template_key": "appointment_reminder",
            "appointment_reminder-extra_when_risk": "30",
            "appointment_reminder-extra_offset_hours": "48",
            "campaign-age_min": "40",  # another kind's field: not kept
        },
    )
    assert response.status_code == 302
    with organization_context(org_a):
        rule = Rule.objects.get()
    assert rule.params == {"extra_when_risk": 0.3, "extra_offset_hours": 48}
    edit = client.get(f"/engagement/rules/{rule.pk}/").content.decode()
    assert 'name="appointment_reminder-extra_when_risk" value="30"' in edit

    missing_recall = client.post(
        "/engagement/rules/new/", {"name": "Flu", "kind": "preventive_recall", "template_key": "lab_results"}
    )
    assert (
        missing_recall.status_code == 400 and "Choose which recall this rule sends." in missing_recall.content.decode()
    )
    recall = client.post(
        "/engagement/rules/new/",
        {
            "name": "Flu",
            "kind": "preventive_recall",
            "template_key": "lab_results",
            "preventive_recall-recall": "flu_shot",
        },
    )
    assert recall.status_code == 302
    with organization_context(org_a):
        assert Rule.objects.get(name="Flu").params == {"recall": "flu_shot"}
    bad_hours = client.post(
        "/engagement/rules/new/",
        {"name": "S", "kind": "survey", "template_key": "lab_results", "survey-max_age_days": "400"},
    )
    assert bad_hours.status_code == 400 and "less than or equal to 30" in bad_hours.content.decode()


def test_editor_is_admin_only_and_another_clinics_rule_is_404(
    client_for, admin_user, nurse_user, other_org_user, org_a
) -> None:
    configure(org_a)
    with organization_context(org_a):
        rule = rule_save(name="R", kind="appointment_reminder", template_key="appointment_reminder", offsets_hours=[24])
    assert client_for(admin_user).get(f"/engagement/rules/{rule.pk}/").status_code == 200
    assert client_for(nurse_user).get(f"/engagement/rules/{rule.pk}/").status_code == 403
    assert client_for(other_org_user).get(f"/engagement/rules/{rule.pk}/").status_code in (403, 404)


# -- In Chromium -----------------------------------------------------------------------------------

LONG_LINK = "https://example.test/" + "x" * 400


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_rule_editor_in_chromium_previews_the_chosen_template_without_widening_the_page(
    live_server: Any, page: Any
) -> None:
    from playwright.sync_api import expect

    organization = OrganizationFactory(slug="east", name="East Clinic", timezone="UTC", require_mfa=False)
    admin = UserFactory(username="admin@east.example")
    MembershipFactory(user=admin, organization=organization, role="admin")
    configure(organization)
    with organization_context(organization):
        template_save(
            key="long_notice", language="en", channel="sms", body="Hi {{ first_name }}, read this: " + LONG_LINK
        )
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill(admin.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")

    page.goto(base + "/engagement/rules/new/")
    preview = page.get_by_test_id("rule-preview")
    expect(preview).to_contain_text("Hi Alex, reminder from East Clinic")  # the default template, on load
    # Only the chosen kind's options are shown.
    expect(page.get_by_label("Extra reminder when the no-show risk is at least (%)")).to_be_visible()
    expect(page.get_by_test_id("options-campaign")).to_be_hidden()
    page.get_by_label("Kind").select_option("campaign")
    expect(page.get_by_test_id("options-campaign")).to_be_visible()
    expect(page.get_by_test_id("options-appointment_reminder")).to_be_hidden()

    page.get_by_label("Template").select_option("long_notice")
    expect(preview).to_contain_text("read this: https://example.test/xxx")
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths

    page.get_by_label("Name").fill("Winter notice")
    page.get_by_label("Send on").fill(timezone.now().date().isoformat())
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(base + "/engagement/rules/")
    with organization_context(organization):
        rule = Rule.objects.get(name="Winter notice")
    assert rule.template_key == "long_notice" and rule.kind == "campaign" and "send_on" in rule.params
