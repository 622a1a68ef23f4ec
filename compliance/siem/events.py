"""One SIEM event per audit-chain link, as a JSON-ready dict.

What an event carries: the organization (id and slug), the link's sequence number and hashes (so a
collector can check the chain itself), when, who (the staff user's id and sign-in name: staff, not
patients), from which IP, what was done and to which records, by type and id. What it never
carries: a patient's name, MRN, contact details or any other value of a record. Access-log rows
already hold only ids and a keyed fingerprint of search terms; change-log entries are reduced to the
names of the fields that changed (their values, even redacted, stay out) and `object_repr` is left
out altogether.
"""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry

from compliance.models import AccessLog, AuditLink, AuditSource
from healthcrm.models import Organization

SCHEMA_VERSION = 1

_WRITE_ACTIONS = {
    LogEntry.Action.CREATE: "create",
    LogEntry.Action.UPDATE: "update",
    LogEntry.Action.DELETE: "delete",
    LogEntry.Action.ACCESS: "access",
}


def _base(organization: Organization, link: AuditLink) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "event_id": f"{organization.slug}:{link.seq}",
        "organization_id": organization.pk,
        "organization": organization.slug,
        "seq": link.seq,
        "source": link.source,
        "source_id": link.source_id,
        "content_hash": link.content_hash,
        "chain_hash": link.hash,
    }


def access_event(organization: Organization, link: AuditLink, row: AccessLog) -> dict[str, Any]:
    records = list(row.records) or [f"{row.object_type}:{pk}" for pk in row.object_ids if row.object_type]
    return {
        **_base(organization, link),
        "time": row.created_at.isoformat(),
        "actor_id": row.actor_id,
        "actor": row.actor_label,
        "action": row.action,
        "view": row.view_name,
        "records": records,
        "search_fields": list(row.search_fields),
        "search_fingerprint": row.search_fingerprint,
        "ip": row.ip_address,
    }


def write_event(organization: Organization, link: AuditLink, entry: LogEntry) -> dict[str, Any]:
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    additional = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    event = additional.get("event")
    return {
        **_base(organization, link),
        "time": entry.timestamp.isoformat(),
        "actor_id": entry.actor_id,
        "actor": entry.actor_email or "",
        "action": _WRITE_ACTIONS.get(entry.action, str(entry.action)),
        "record": f"{entry.content_type.app_label}.{entry.content_type.model}:{entry.object_pk}",
        "fields": sorted(str(name)[:100] for name in changes),
        "event": str(event)[:100] if event else "",
        "ip": entry.remote_addr,
    }


def siem_event(organization: Organization, link: AuditLink, row: AccessLog | LogEntry | None) -> dict[str, Any]:
    """The event of one link; a link whose row is gone (it never should be) says so."""
    if isinstance(row, AccessLog):
        return access_event(organization, link, row)
    if isinstance(row, LogEntry):
        return write_event(organization, link, row)
    return {**_base(organization, link), "missing": True}


def events_for_links(organization: Organization, links: list[AuditLink]) -> list[dict[str, Any]]:
    """The events of these links, in their order (two queries, whatever the batch size)."""
    access_ids = [link.source_id for link in links if link.source == AuditSource.ACCESS]
    write_ids = [link.source_id for link in links if link.source == AuditSource.WRITE]
    access = {row.pk: row for row in AccessLog.objects.filter(pk__in=access_ids)}
    writes = {entry.pk: entry for entry in LogEntry.objects.filter(pk__in=write_ids).select_related("content_type")}
    rows: dict[str, dict[int, Any]] = {AuditSource.ACCESS: access, AuditSource.WRITE: writes}
    return [siem_event(organization, link, rows[link.source].get(link.source_id)) for link in links]
