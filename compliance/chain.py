"""The audit chain's verifier: walks an organization's links and names the first broken or missing one.

The database writes the chain (triggers in compliance/migrations/0002_audit_chain.py); this module
only reads it, as the app role, one organization at a time (row-level security applies).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import connection, transaction

from compliance.models import AuditSource
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context

GENESIS = "0" * 64

_LABELS = {AuditSource.ACCESS: "access log row", AuditSource.WRITE: "change log entry"}

_LINKS = """
SELECT l.seq, l.source, l.source_id, l.content_hash, l.prev_hash, l.hash,
       CASE WHEN a.id IS NOT NULL THEN audit_content_access(a)
            WHEN e.id IS NOT NULL THEN audit_content_write(e) END
FROM compliance_auditlink l
LEFT JOIN compliance_accesslog a ON l.source = 'access' AND a.id = l.source_id
LEFT JOIN auditlog_logentry e ON l.source = 'write' AND e.id = l.source_id
WHERE l.organization_id = %s
ORDER BY l.seq
"""

# Rows the chain does not cover: written with the chain's trigger disabled (by the owner).
_UNCHAINED = """
SELECT src, id FROM (
    SELECT 'access' AS src, a.id FROM compliance_accesslog a
    WHERE a.organization_id = %s
      AND NOT EXISTS (SELECT 1 FROM compliance_auditlink l WHERE l.source = 'access' AND l.source_id = a.id)
    UNION ALL
    SELECT 'write', e.id FROM auditlog_logentry e
    WHERE audit_logentry_organization(e.additional_data) = %s
      AND NOT EXISTS (SELECT 1 FROM compliance_auditlink l WHERE l.source = 'write' AND l.source_id = e.id)
) unchained
ORDER BY id LIMIT 1
"""


@dataclass(frozen=True)
class ChainReport:
    organization: str
    checked: int
    problem: str = ""

    @property
    def intact(self) -> bool:
        return not self.problem

    def __str__(self) -> str:
        verdict = "chain intact" if self.intact else f"BROKEN: {self.problem}"
        return f"{self.organization}: {self.checked} rows checked, {verdict}"


def link_hash(*, prev_hash: str, organization_id: int, seq: int, source: str, source_id: int, content_hash: str) -> str:
    """The same formula as audit_chain_append() in the database."""
    text = "|".join([prev_hash, str(organization_id), str(seq), source, str(source_id), content_hash])
    return hashlib.sha256(text.encode()).hexdigest()


def audit_chain_verify(organization: Organization) -> ChainReport:
    """Check every link of the organization's chain, in order; stop at the first problem."""
    with organization_context(organization), transaction.atomic():
        problem, checked = _walk(organization.pk)
        if not problem:
            with connection.cursor() as cursor:
                cursor.execute(_UNCHAINED, [organization.pk, organization.pk])
                row = cursor.fetchone()
            if row is not None:
                problem = f"{_LABELS[row[0]]} {row[1]} is not in the chain (written around it)"
    return ChainReport(organization.slug, checked, problem)


def _walk(organization_id: int) -> tuple[str, int]:
    expected_seq, expected_prev, checked = 1, GENESIS, 0
    with connection.chunked_cursor() as cursor:
        cursor.execute(_LINKS, [organization_id])
        while rows := cursor.fetchmany(2000):
            for seq, source, source_id, content_hash, prev_hash, stored_hash, content in rows:
                row = f"{_LABELS[source]} {source_id} (link {seq})"
                if seq != expected_seq:
                    first, last = expected_seq, seq - 1
                    gap = f"link {first}" if first == last else f"links {first}-{last}"
                    return f"{gap} missing: the chain jumps from link {expected_seq - 1} to link {seq}", checked
                if prev_hash != expected_prev:
                    return f"link {seq} does not follow link {seq - 1} (prev_hash differs)", checked
                recomputed = link_hash(
                    prev_hash=prev_hash,
                    organization_id=organization_id,
                    seq=seq,
                    source=source,
                    source_id=source_id,
                    content_hash=content_hash,
                )
                if recomputed != stored_hash:
                    return f"link {seq} was altered (its hash does not match)", checked
                if content is None:
                    return f"{row} is missing (deleted)", checked
                if hashlib.sha256(content.encode()).hexdigest() != content_hash:
                    return f"{row} was altered after it was written", checked
                expected_seq, expected_prev, checked = seq + 1, stored_hash, checked + 1
    return "", checked
