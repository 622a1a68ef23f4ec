"""`manage.py verify_audit [--organization SLUG]`: check each organization's audit chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.chain import audit_chain_verify
from healthcrm.models import Organization


class Command(BaseCommand):
    help = "Verify the hash chain of the audit trail; name the first broken or missing link. Exit 1 when broken."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="Only this organization (default: all).")

    def handle(self, *args: Any, organization: str | None = None, **options: Any) -> None:
        organizations = Organization.objects.order_by("slug")
        if organization:
            organizations = organizations.filter(slug=organization)
            if not organizations.exists():
                raise CommandError(f"No organization with the slug {organization!r}.")
        broken = []
        for org in organizations:
            report = audit_chain_verify(org)
            self.stdout.write(str(report))
            if not report.intact:
                broken.append(org.slug)
        if broken:
            raise CommandError(f"The audit chain is broken for: {', '.join(broken)}.")
