"""Re-encrypting PHI under the newest key and finding values no key can decrypt.

Both read the ciphertext with raw SQL (never through the fields, which would decrypt), one
organization at a time (row-level security applies), in primary-key batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import cryptography.fernet
from django.db import connection, models

from healthcrm.crypto import _crypter, is_encrypted, phi_models, primary_fernet, secret_models
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

BATCH = 1000


@dataclass
class EncryptionReport:
    current: Counter[str] = field(default_factory=Counter)  # already under the first key
    rotated: Counter[str] = field(default_factory=Counter)  # re-encrypted now
    undecryptable: Counter[str] = field(default_factory=Counter)  # no key decrypts
    undecryptable_rows: dict[str, list[str]] = field(default_factory=dict)  # label -> first row ids

    def lines(self) -> Iterator[str]:
        labels = sorted(set(self.current) | set(self.rotated) | set(self.undecryptable))
        for label in labels:
            yield (
                f"{label}: {self.rotated[label]} re-encrypted, {self.current[label]} already current, "
                f"{self.undecryptable[label]} undecryptable"
            )
            if self.undecryptable_rows.get(label):
                yield f"    undecryptable in rows (first ids): {', '.join(self.undecryptable_rows[label])}"


def _columns(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if is_encrypted(f)]


def _batches(
    model: type[models.Model], columns: list[models.Field], organization_id: int | None
) -> Iterator[list[tuple]]:
    qn = connection.ops.quote_name
    select = ", ".join(qn(c.column) for c in columns)
    table = qn(model._meta.db_table)
    pk = qn(model._meta.pk.column)
    last = None
    # Platform models (organization_id None) have no organization column.
    where, scope = ("organization_id = %s AND ", [organization_id]) if organization_id is not None else ("", [])
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                # bandit B608: identifiers quoted, values bound.
                f"SELECT {pk}, {select} FROM {table} WHERE {where}(%s::bigint IS NULL OR {pk} > %s)"  # noqa: S608 - identifiers quoted  # nosec B608
                f" ORDER BY {pk} LIMIT %s",
                [*scope, last, last, BATCH],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def encryption_sweep(*, rotate: bool) -> EncryptionReport:
    """Classify every encrypted value; with `rotate`, re-encrypt those not under the first key."""
    report = EncryptionReport()
    for organization in Organization.objects.order_by("pk"):
        with organization_context(organization):
            for model in phi_models():
                _sweep(model, organization.pk, report, rotate=rotate)
    for model in secret_models():
        _sweep(model, None, report, rotate=rotate)
    return report


def _sweep(model: type[models.Model], organization_id: int | None, report: EncryptionReport, *, rotate: bool) -> None:
    primary = primary_fernet()
    crypter = _crypter()
    qn = connection.ops.quote_name
    columns = _columns(model)
    # bandit B608: identifiers quoted, values bound.
    assignments = ", ".join(f"{qn(c.column)} = %s" for c in columns)
    update = f"UPDATE {qn(model._meta.db_table)} SET {assignments} WHERE {qn(model._meta.pk.column)} = %s"  # noqa: S608  # nosec B608
    for rows in _batches(model, columns, organization_id):
        changed = []
        for row in rows:
            values = list(row[1:])
            dirty = False
            for index, column in enumerate(columns):
                token = values[index]
                if token is None:
                    continue
                label = f"{model._meta.label}.{column.name}"
                try:
                    primary.decrypt(token.encode())
                    report.current[label] += 1
                    continue
                except cryptography.fernet.InvalidToken:
                    pass
                try:
                    rotated = crypter.rotate(token.encode()).decode()
                except cryptography.fernet.InvalidToken:
                    report.undecryptable[label] += 1
                    ids = report.undecryptable_rows.setdefault(label, [])
                    if len(ids) < 20:
                        ids.append(str(row[0]))
                    continue
                report.rotated[label] += 1
                if rotate:
                    values[index] = rotated
                    dirty = True
            if dirty:
                changed.append([*values, row[0]])
        if rotate and changed:
            with connection.cursor() as cursor:
                cursor.executemany(update, changed)
