"""The request side of tenancy: which organization a signed-in user works in, for this request."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from healthcrm.models import Membership, Organization
from healthcrm.security import sign_out
from healthcrm.selectors import membership_list
from healthcrm.tenancy import SESSION_KEY, organization_context, user_context


class TenantMiddleware:
    """Resolve the request's organization and run the rest of the request inside it.

    The transaction opened here is the request's transaction (Django's ATOMIC_REQUESTS would only
    wrap the view, after the organization setting had been lost): it commits when the response is
    below 500 and rolls back otherwise, so an audit row never outlives the change it describes.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.organization = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        request.memberships = []  # type: ignore[attr-defined]
        user = request.user
        if not user.is_authenticated:
            return self.get_response(request)
        with user_context(user.pk):
            memberships = membership_list(user.pk)
            request.memberships = memberships  # type: ignore[attr-defined]
            if self._membership_ended(request, memberships):
                # Deactivated (or removed) in the organization this session works in: the session
                # ends on this very request, whatever other memberships the user holds.
                return sign_out(request, "Your access to this organization has ended. Please sign in again.")
            organization, membership = self._choose(request, memberships)
            request.membership = membership  # type: ignore[attr-defined]
            if organization is None:
                response = self.get_response(request)
            else:
                request.organization = organization  # type: ignore[attr-defined]
                # Pages show times in the organization's time zone; the database keeps UTC.
                with organization_context(organization), timezone.override(organization.zone):
                    response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
        return response

    @staticmethod
    def _membership_ended(request: HttpRequest, memberships: list[Membership]) -> bool:
        """Whether the session works in an organization where the user is no longer an active
        member. The session remembers its organization from its first request on (`_choose`), so
        a deactivation ends every session of the user in that organization at their next request.
        Platform administrators enter organizations without a membership."""
        wanted = request.session.get(SESSION_KEY)
        if not wanted or request.user.is_superuser:
            return False
        return all(membership.organization_id != wanted for membership in memberships)

    @staticmethod
    def _choose(request: HttpRequest, memberships: list[Membership]) -> tuple[Organization | None, Membership | None]:
        wanted = request.session.get(SESSION_KEY)
        for membership in memberships:
            if membership.organization_id == wanted:
                return membership.organization, membership
        # Platform administrators may enter any organization; they act as its administrator.
        if wanted and request.user.is_superuser:
            organization = Organization.objects.filter(pk=wanted, is_active=True).first()
            if organization is not None:
                return organization, None
        if memberships:
            request.session[SESSION_KEY] = memberships[0].organization_id
            return memberships[0].organization, memberships[0]
        return None, None
