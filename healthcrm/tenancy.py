"""The tenancy core: which organization is current, for the ORM and for PostgreSQL.

Two walls keep clinics apart:

1. The application: every tenant model's default manager (`TenantManager`) filters on the current
   organization and refuses to run when there is none.
2. The database: row-level security on every tenant table compares `organization_id` with the
   transaction-local setting `app.current_organization`, which `organization_context` sets.

Requests get their organization from `TenantMiddleware` (healthcrm/middleware.py), Celery tasks
from `TenantTask` (healthcrm/tasks.py), management commands by entering `organization_context`
themselves. This module imports no model at run time, so models.py can build on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from django.db import connections, transaction
from django.http import HttpRequest

if TYPE_CHECKING:
    from healthcrm.models import Organization

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


def organization_context_processor(request: HttpRequest) -> dict[str, object]:
    return {
        "current_organization": getattr(request, "organization", None),
        "current_membership": getattr(request, "membership", None),
        "user_memberships": getattr(request, "memberships", []),
    }
