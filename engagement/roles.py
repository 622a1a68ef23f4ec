"""Outreach permissions per role, added to the role groups after every migrate.

Kept here (not in healthcrm/roles.py) while engagement is built; the lead may fold it into
ROLE_PERMISSIONS.
"""

from __future__ import annotations

from typing import Any

_VIEW = ["engagement.view_outboundmessage", "engagement.view_conversationmessage", "engagement.add_conversationmessage"]
_AUTHOR = [
    "engagement.view_rule",
    "engagement.add_rule",
    "engagement.change_rule",
    "engagement.view_messagetemplate",
    "engagement.add_messagetemplate",
    "engagement.change_messagetemplate",
]

ENGAGEMENT_ROLE_PERMISSIONS: dict[str, list[str]] = {
    "admin": [
        *_VIEW,
        *_AUTHOR,
        "engagement.view_channelsettings",
        "engagement.change_channelsettings",
        "engagement.view_consent",
        "engagement.change_consent",
    ],
    "coordinator": [*_VIEW, *_AUTHOR, "engagement.view_consent", "engagement.change_consent"],
    "provider": [*_VIEW, "engagement.view_rule", "engagement.view_messagetemplate", "engagement.view_consent"],
    "nurse": [
        *_VIEW,
        "engagement.view_rule",
        "engagement.view_messagetemplate",
        "engagement.view_consent",
        "engagement.change_consent",
    ],
    "frontdesk": [*_VIEW, "engagement.view_consent", "engagement.change_consent"],
}


def sync_engagement_permissions(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    from healthcrm.roles import group_name

    for role, perms in ENGAGEMENT_ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name(role))
        codenames = [perm.split(".", 1)[1] for perm in perms]
        group.permissions.add(
            *Permission.objects.using(using).filter(content_type__app_label="engagement", codename__in=codenames)
        )
