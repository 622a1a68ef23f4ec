"""The base every tenant task uses, the beat scans' fan-out, and platform housekeeping tasks.

"Treat a task as an API": tenant tasks take `organization_id` first and ids after it (never PHI:
the broker keeps payloads in clear). The base resolves the organization and hands it to the body:

    @shared_task(base=TenantTask, name="app.tasks.thing_do_task", ignore_result=True)
    def thing_do_task(organization: Organization, thing_id: int) -> None:
        ...  # atomic (the default): inside organization_context, one transaction

    @shared_task(base=TenantTask, atomic=False, name="app.tasks.thing_send_task", ignore_result=True)
    def thing_send_task(organization: Organization, thing_id: int) -> None:
        with organization_context(organization):
            ...  # claim, committed here, before the network call
        ...  # the network call, outside any transaction

Callers pass ids: `thing_do_task.delay(organization.pk, thing.pk, actor_id=request.user.pk)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from auditlog.context import set_actor
from celery import Task, shared_task
from django.contrib.auth import get_user_model

from healthcrm.tenancy import organization_context

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from healthcrm.models import Organization

_current_actor: ContextVar[AbstractBaseUser | None] = ContextVar("task_actor", default=None)


def current_actor() -> AbstractBaseUser | None:
    """The user a running tenant task acts for (its `actor_id`), for services that take `actor=`."""
    return _current_actor.get()


@contextmanager
def _acting_as(actor: AbstractBaseUser | None) -> Iterator[None]:
    token = _current_actor.set(actor)
    try:
        with set_actor(actor):
            yield
    finally:
        _current_actor.reset(token)


class TenantTask(Task):
    """Resolves `organization_id` to an active Organization, sets the audit actor, runs the body.

    - `organization_id` None is refused (ValueError): tenant tasks never run unscoped.
    - An organization that is gone or suspended: the task returns None without running the body.
    - `actor_id=` (optional keyword) names the user for audit rows (`set_actor`, `current_actor()`);
      it is not passed on to the body.
    - `atomic = True` (the default): the body runs inside `organization_context(organization)`, one
      transaction that commits when it returns and rolls back when it raises.
      `atomic = False`: no context and no transaction around the body; it enters
      `organization_context(organization)` around each database step itself (claims committed
      before a network call, imports committed unit by unit).

    The body always gets the Organization as its first argument. `self.request` keeps the message's
    own arguments (the ids and `actor_id`), so `self.retry()` sends again exactly what came.
    """

    abstract = True
    atomic: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Celery checks `.delay()` arguments against the body's signature (its `__header__`), which
        # has no `actor_id`: let that one through, the base consumes it.
        header = cls.__dict__.get("__header__")
        if isinstance(header, staticmethod):
            body_arguments = header.__func__

            def check_arguments(*args: Any, actor_id: int | None = None, **kwargs: Any) -> Any:
                return body_arguments(*args, **kwargs)

            cls.__header__ = staticmethod(check_arguments)  # type: ignore[attr-defined]

    def __call__(self, organization_id: int, *args: Any, actor_id: int | None = None, **kwargs: Any) -> Any:
        from healthcrm.models import Organization

        if organization_id is None:
            raise ValueError(f"{self.name} needs an organization_id: tenant tasks never run unscoped.")
        # Organizations are platform rows (no RLS): found without a current organization.
        organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
        if organization is None:
            return None  # the organization is gone or suspended: nothing to do
        actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
        # `run` directly, not Task.__call__: that would push a request whose args hold the
        # Organization instead of its id (and lose actor_id), and a retry would send those.
        with _acting_as(actor):
            if not self.atomic:
                return self.run(organization, *args, **kwargs)
            with organization_context(organization):
                return self.run(organization, *args, **kwargs)


def fan_out(task: Task, due: Callable[[Organization], Iterable[Any]] | None = None, **kwargs: Any) -> int:
    """A beat scan: for each active organization, the ids `due(organization)` gives, one task each.

    `due` runs inside the organization's context (its transaction commits before anything is
    enqueued); then `task.delay(organization.pk, item, **kwargs)` for each item it returned. With no
    `due`, one task per organization: `task.delay(organization.pk, **kwargs)`. Keyword arguments
    are options (ids and flags), never PHI. Returns how many tasks were enqueued.
    """
    from healthcrm.models import Organization

    total = 0
    for organization in Organization.objects.filter(is_active=True).order_by("pk"):
        if due is None:
            task.delay(organization.pk, **kwargs)
            total += 1
            continue
        with organization_context(organization):
            items = list(due(organization))
        for item in items:
            task.delay(organization.pk, item, **kwargs)
        total += len(items)
    return total


@shared_task(name="healthcrm.tasks.clear_expired_sessions_task", ignore_result=True)
def clear_expired_sessions_task() -> None:
    """Drop expired sessions through the configured engine (the Redis cache engine expires keys
    itself, so there it is a no-op; kept for an engine that stores them elsewhere)."""
    from importlib import import_module

    from django.conf import settings

    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
