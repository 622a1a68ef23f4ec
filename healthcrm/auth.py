"""Permissions from the role a user holds in the current organization."""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from healthcrm.roles import group_name
from healthcrm.tenancy import get_current_organization


class OrganizationRoleBackend(ModelBackend):
    """Username/password sign-in, and model permissions of the user's role in the current organization.

    Users are never put in the role groups themselves (groups are global, roles are per
    organization); the group stands for the role's permission set. Object permissions come from
    django-guardian's backend, next in AUTHENTICATION_BACKENDS.
    """

    def get_group_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        organization = get_current_organization()
        if organization is None:
            return set()
        cache = getattr(user_obj, "_healthcrm_role_perms", None)
        if cache is not None and cache[0] == organization.pk:
            return cache[1]
        from healthcrm.models import Membership

        role = (
            Membership.objects.filter(user_id=user_obj.pk, organization_id=organization.pk, is_active=True)
            .values_list("role", flat=True)
            .first()
        )
        perms: set[str] = set()
        if role is not None:
            perms = {
                f"{app_label}.{codename}"
                for app_label, codename in Permission.objects.filter(group__name=group_name(role)).values_list(
                    "content_type__app_label", "codename"
                )
            }
        user_obj._healthcrm_role_perms = (organization.pk, perms)
        return perms

    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        # Permissions are granted through roles only (and django-guardian for objects).
        return set()

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return self.get_group_permissions(user_obj, obj)

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return any(perm.split(".", 1)[0] == app_label for perm in self.get_all_permissions(user_obj))


def role_in_current_organization(user: Any) -> str | None:
    from healthcrm.models import Membership

    organization = get_current_organization()
    if organization is None or not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user_id=user.pk, organization_id=organization.pk, is_active=True)
        .values_list("role", flat=True)
        .first()
    )


class PerParameterLockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler with one failure limit per lockout parameter.

    Axes compares the largest failure count of AXES_LOCKOUT_PARAMETERS with one limit, so a per-IP
    count would lock a whole clinic behind one address after five typos. Here each count is scaled
    to its own limit: the pair (username, IP) by AXES_FAILURE_LIMIT, the username alone by
    AXES_USERNAME_FAILURE_LIMIT, the IP alone by AXES_IP_FAILURE_LIMIT. `failures * L // limit >= L`
    holds exactly when `failures >= limit`, so axes' own comparison with L = AXES_FAILURE_LIMIT
    decides lockout for all three.
    """

    @staticmethod
    def _limit(parameter: str | list[str]) -> int:
        if parameter == "username":
            return int(settings.AXES_USERNAME_FAILURE_LIMIT)
        if parameter == "ip_address":
            return int(settings.AXES_IP_FAILURE_LIMIT)
        return int(settings.AXES_FAILURE_LIMIT)

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        from django.db.models import Sum

        base = int(settings.AXES_FAILURE_LIMIT)
        scaled = [0]
        for parameter, attempts in zip(
            settings.AXES_LOCKOUT_PARAMETERS, self.get_user_attempts(request, credentials), strict=True
        ):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            scaled.append(failures * base // self._limit(parameter))
        return max(scaled)
