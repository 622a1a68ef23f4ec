"""Report encrypted values that no configured key decrypts (and how many await re-encryption)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from healthcrm.encryption_maintenance import encryption_sweep


class Command(BaseCommand):
    help = "Check that every encrypted field value decrypts with FIELD_ENCRYPTION_KEY; exit 1 if any does not."

    def handle(self, *args: Any, **options: Any) -> None:
        report = encryption_sweep(rotate=False)
        for line in report.lines():
            self.stdout.write(line.replace(" re-encrypted", " under an older key"))
        bad = sum(report.undecryptable.values())
        if bad:
            raise CommandError(f"{bad} encrypted values cannot be decrypted with any configured key.")
        self.stdout.write(self.style.SUCCESS("Every encrypted value decrypts."))
