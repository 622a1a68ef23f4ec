from __future__ import annotations

import json
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.fhir.importer import ImportReport, fhir_import_data
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def admin_user(org_a: Any) -> Any:
    """An administrator of organization A: may import."""
    user = UserFactory(username="admin@north.example")
    MembershipFactory(user=user, organization=org_a, role="admin")
    return user


@pytest.fixture
def import_into() -> Any:
    """`import_into(org, bundle_or_text, source_system="test")` -> ImportReport, committed per unit."""

    def run(organization: Any, data: Any, source_system: str = "test") -> ImportReport:
        text = data if isinstance(data, str | bytes) else json.dumps(data)

        def unit(fn: Any) -> None:
            with organization_context(organization):
                fn()

        return fhir_import_data(text, source_system=source_system, run_unit=unit)

    return run


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
