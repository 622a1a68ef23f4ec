"""The tenancy core: which organization is current, for the ORM and for PostgreSQL.

Two walls keep clinics apart:

1. The application: every tenant model's default manager (`TenantManager`) filters on the current
   organization and refuses to run when there is none.
2. The database: row-level security on every tenant table compares `organization_id` with the
   transaction-local setting `app.current_organization`, which `organization_context` sets.

Requests get their organization from `TenantMiddleware`, Celery tasks from `TenantTask`
(healthcrm/tasks.py), management commands by entering `organization_context` themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

if TYPE_CHECKING:
    from healthcrm.models import Membership, Organization

_current_organization: ContextVar[Organization | None] = ContextVar("current_organization", default=None)

SESSION_KEY = "healthcrm_organization_id"


class NoOrganizationError(RuntimeError):
    """A tenant query ran with no current organization."""


def get_current_organization() -> Organization | None:
    return _current_organization.get()


def require_current_organization() -> Organization:
    organization = _current_organization.get()
    if organization is None:
        raise NoOrganizationError(
            "No organization is current: tenant data can only be read or written inside "
            "organization_context(...) (requests and tasks enter it for you)."
        )
    return organization


def _set_database_setting(name: str, value: int | None, using: str) -> None:
    if connections[using].needs_rollback:
        # The block is being rolled back (a failed query below): the rollback restores the
        # setting, and a query here would only replace the real error with TransactionManagementError.
        return
    with connections[using].cursor() as cursor:
        # Transaction-local (is_local=true): a pooled connection never carries it to the next user.
        cursor.execute("SELECT set_config(%s, %s, true)", [name, "" if value is None else str(value)])


@contextmanager
def organization_context(organization: Organization, *, using: str = "default") -> Iterator[Organization]:
    """Make `organization` current for the ORM and for row-level security, in a transaction.

    On normal exit the previous organization is restored in the database too; on an exception
    the savepoint rollback restores it (settings made with set_config are transactional).
    """
    previous = _current_organization.get()
    token = _current_organization.set(organization)
    try:
        with transaction.atomic(using=using):
            _set_database_setting("app.current_organization", organization.pk, using)
            yield organization
            _set_database_setting("app.current_organization", previous.pk if previous else None, using)
    finally:
        _current_organization.reset(token)


@contextmanager
def user_context(user_id: int | None, *, using: str = "default") -> Iterator[None]:
    """Let the database show a user their own memberships (the membership table's RLS policy)."""
    with transaction.atomic(using=using):
        _set_database_setting("app.current_user", user_id, using)
        yield
        _set_database_setting("app.current_user", None, using)


def memberships_for(user_id: int) -> list[Membership]:
    """The user's active memberships, across organizations (needs `user_context`)."""
    from healthcrm.models import Membership

    return list(
        Membership.objects.filter(user_id=user_id, is_active=True)
        .select_related("organization")
        .order_by("organization__name")
    )


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
            memberships = memberships_for(user.pk)
            request.memberships = memberships  # type: ignore[attr-defined]
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
    def _choose(request: HttpRequest, memberships: list[Membership]) -> tuple[Organization | None, Membership | None]:
        from healthcrm.models import Organization

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


def organization_context_processor(request: HttpRequest) -> dict[str, object]:
    return {
        "current_organization": getattr(request, "organization", None),
        "current_membership": getattr(request, "membership", None),
        "user_memberships": getattr(request, "memberships", []),
    }
