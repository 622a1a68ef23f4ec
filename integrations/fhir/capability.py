"""Test a connection: read the server's CapabilityStatement (`GET [base]/metadata`) with the
connection's authentication, and say what it supports that a pull needs (no PHI: server metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integrations.fhir.client import FhirClientError
from integrations.fhir.services import connection_client
from integrations.models import AuthType, FhirConnection

MAX_TYPES = 200
MAX_PARAMS = 12


@dataclass
class TypeSupport:
    type: str
    supported: bool
    search_params: list[str] = field(default_factory=list)


@dataclass
class CapabilityReport:
    ok: bool
    message: str
    auth: str = ""
    fhir_version: str = ""
    software: str = ""
    resource_types: list[str] = field(default_factory=list)
    pulled: list[TypeSupport] = field(default_factory=list)
    bulk_export: bool = False


def _text(value: Any, limit: int = 100) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""


def _exports(rest: dict[str, Any]) -> bool:
    """An `export` operation at system level or on Patient/Group (Bulk Data IG)."""
    operations = list(rest.get("operation") or [])
    for resource in rest.get("resource") or []:
        if isinstance(resource, dict) and resource.get("type") in ("Patient", "Group"):
            operations += list(resource.get("operation") or [])
    return any(isinstance(op, dict) and op.get("name") in ("export", "$export") for op in operations)


def read_capability(connection: FhirConnection, statement: dict[str, Any]) -> CapabilityReport:
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        return CapabilityReport(ok=False, message="The server's /metadata is not a CapabilityStatement.")
    rests = [r for r in statement.get("rest") or [] if isinstance(r, dict) and r.get("mode", "server") == "server"]
    resources: dict[str, list[str]] = {}
    for rest in rests:
        for resource in rest.get("resource") or []:
            if isinstance(resource, dict) and isinstance(resource.get("type"), str) and len(resources) < MAX_TYPES:
                params = [_text(p.get("name"), 64) for p in resource.get("searchParam") or [] if isinstance(p, dict)]
                resources[resource["type"][:64]] = [p for p in params if p]
    found = statement.get("software")
    software: dict[str, Any] = found if isinstance(found, dict) else {}
    return CapabilityReport(
        ok=True,
        message="The server answered its CapabilityStatement.",
        fhir_version=_text(statement.get("fhirVersion"), 20),
        software=" ".join(filter(None, [_text(software.get("name")), _text(software.get("version"), 40)])),
        resource_types=sorted(resources),
        pulled=[
            TypeSupport(type=t, supported=t in resources, search_params=resources.get(t, [])[:MAX_PARAMS])
            for t in connection.pull_types
        ],
        bulk_export=any(_exports(rest) for rest in rests),
    )


def fhir_connection_test(*, connection: FhirConnection, deadline_seconds: float = 20.0) -> CapabilityReport:
    """One GET of `[base]/metadata` (a SMART connection first gets a token), without retries."""
    client = connection_client(connection, max_retries=0)
    client.start_deadline(deadline_seconds)
    auth = {
        AuthType.NONE: "No authentication configured.",
        AuthType.BEARER: "The bearer token was sent.",
        AuthType.SMART: "A SMART Backend Services token was obtained and sent.",
    }[AuthType(connection.auth_type)]
    try:
        response = client._send("GET", f"{client.base_url}/metadata", retry=set())
    except FhirClientError as exc:
        return CapabilityReport(ok=False, message=str(exc))  # a token endpoint's refusal says so
    if response.status_code in (401, 403):
        return CapabilityReport(
            ok=False, message=f"The server refused our credentials ({response.status_code}).", auth=auth
        )
    if response.status_code != 200:
        return CapabilityReport(ok=False, message=f"The server answered {response.status_code}.", auth=auth)
    try:
        statement = response.json()
    except ValueError:
        return CapabilityReport(ok=False, message="The server answered with something that is not JSON.", auth=auth)
    report = read_capability(connection, statement)
    report.auth = auth
    return report
