from __future__ import annotations

from typing import Any

from django import template

from healthcrm.selectors import unread_count
from healthcrm.tenancy import get_current_organization

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context: dict[str, Any]) -> int:
    """The signed-in user's unread notifications in the current organization (one COUNT query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or get_current_organization() is None:
        return 0
    return unread_count(user)
