"""Print a one-time MFA enrolment link for a user (for an operator to hand over in person)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from staff.services import enrolment_link_issue


class Command(BaseCommand):
    help = "Issue a one-time link that lets USER set up (or replace) their authenticator app."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("user", help="Username (email address) of the user.")
        parser.add_argument("--email", action="store_true", help="Also email the link to the user.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        base_url = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        link = enrolment_link_issue(user=user, base_url=base_url, email=options["email"])
        self.stdout.write(
            f"Enrolment link for {user.get_username()} (one use, {settings.MFA_ENROLMENT_LINK_HOURS} h): {link}"
        )
