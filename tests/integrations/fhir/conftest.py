from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from healthcrm.tenancy import organization_context
from integrations.fhir.importer import ImportReport, fhir_import_data
from integrations.models import FhirConnection
from tests.factories import MembershipFactory, UserFactory
from tests.integrations.fhir.fake_ehr import PRIVATE_PEM, FakeEhr


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


@pytest.fixture
def ehr() -> Iterator[FakeEhr]:
    fake = FakeEhr()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)  # quick stop
    thread.start()
    yield fake
    fake.release.set()  # requests held or hung by the test end now
    server.shutdown()
    server.server_close()


@pytest.fixture
def connection(org_a: Any, ehr: FakeEhr) -> FhirConnection:
    with organization_context(org_a):
        return FhirConnection.objects.create(
            name="Fake EHR",
            base_url=ehr.base,
            auth_type="smart",
            client_id="healthcrm",
            token_url=ehr.base + "/token",
            private_key_pem=PRIVATE_PEM,
            key_id="key-1",
            resource_types=["Patient", "Practitioner", "Encounter", "Observation", "Condition"],
        )
