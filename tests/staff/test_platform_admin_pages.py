"""The platform administrator in the staff pages (issue #11 item 1): it never sees a link it cannot
follow. With no organization to work in, the navigation offers only what works without one (the
admin, and the way to choose an organization); with one chosen, every entry opens."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from healthcrm.tenancy import SESSION_KEY
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

_NAV = re.compile(r'<div class="site-menu" id="site-menu">(.*?)</header>', re.S)
_HREF = re.compile(r'<a [^>]*href="([^"]+)"')


@pytest.fixture
def platform_admin(db: None) -> Any:
    return UserFactory(username="root@platform.example", is_staff=True, is_superuser=True)


def _links(client: Any) -> list[str]:
    page = client.get(reverse("dashboard"), follow=True)
    assert page.status_code == 200, page.status_code
    header = _NAV.search(page.content.decode())
    assert header, "no site menu"
    return _HREF.findall(header.group(1))


def _status_after_redirects(client: Any, url: str) -> int:
    return client.get(url, follow=True).status_code


def test_without_an_organization_a_staff_page_leads_to_choosing_one_not_a_dead_end(
    client_for: Any, platform_admin: Any, org_a: Any
) -> None:
    client = client_for(platform_admin)
    for page in (reverse("dashboard"), reverse("patients:list")):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"] == f"{reverse('admin:choose_organization')}?next={page.replace('/', '%2F')}"
    chooser = client.get(reverse("dashboard"), follow=True)
    assert chooser.status_code == 200 and "Organization to work in" in chooser.content.decode()
    # Choosing there brings it back to the page it asked for, in that organization.
    back = client.post(reverse("admin:choose_organization"), {"organization": org_a.pk, "next": reverse("dashboard")})
    assert back["Location"] == reverse("dashboard") and client.get(back["Location"]).status_code == 200


def test_a_member_without_an_organization_still_sees_why(client_for: Any) -> None:
    loner = UserFactory(username="loner@nowhere.example")
    response = client_for(loner).get(reverse("dashboard"))
    assert response.status_code == 403 and "not a member of any organization" in response.content.decode()


def test_with_an_organization_chosen_every_link_it_is_shown_opens(
    client_for: Any, platform_admin: Any, org_a: Any
) -> None:
    client = client_for(platform_admin)
    client.post(reverse("admin:choose_organization"), {"organization": org_a.pk})
    assert client.session[SESSION_KEY] == org_a.pk
    links = _links(client)
    assert reverse("patients:list") in links and reverse("compliance:access_log") in links
    assert {link: _status_after_redirects(client, link) for link in links} == dict.fromkeys(links, 200)


def test_switching_into_a_clinic_from_the_staff_pages_is_audited_like_the_admin_chooser(
    client_for: Any, platform_admin: Any, org_a: Any
) -> None:
    from auditlog.models import LogEntry

    from healthcrm.tenancy import organization_context

    client = client_for(platform_admin)
    assert client.post(reverse("organization_switch"), {"organization": org_a.pk}).status_code == 302
    assert client.session[SESSION_KEY] == org_a.pk
    with organization_context(org_a):
        entered = LogEntry.objects.filter(action=LogEntry.Action.ACCESS, actor=platform_admin)
        assert [e.additional_data["event"] for e in entered] == ["platform_admin_entered"]
