"""Re-encrypt every encrypted value under the first key of FIELD_ENCRYPTION_KEY.

Key rotation: put the new key first (FIELD_ENCRYPTION_KEY=new,old), restart, run this, check
that it reports 0 undecryptable, then drop the old key. Blind indexes use BLIND_INDEX_KEY and
are not affected.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from healthcrm.encryption_maintenance import encryption_sweep


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field value with the first FIELD_ENCRYPTION_KEY and report counts."

    def handle(self, *args: Any, **options: Any) -> None:
        report = encryption_sweep(rotate=True)
        for line in report.lines():
            self.stdout.write(line)
        total = sum(report.rotated.values())
        self.stdout.write(f"Re-encrypted {total} values; {sum(report.current.values())} were already current.")
        if report.undecryptable:
            raise CommandError(
                f"{sum(report.undecryptable.values())} values could not be decrypted with any configured key; "
                "they were left untouched."
            )
