"""Pulling from a local fake FHIR server: SMART Backend Services token, paged searchsets, a 500 once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from healthcrm.tenancy import organization_context
from integrations.fhir.client import FhirClient, FhirClientError
from integrations.fhir.services import connection_client, fhir_pull_connection
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import FhirConnection, JobStatus
from patients.models import Observation, Patient

pytestmark = pytest.mark.django_db

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


class FakeEhr:
    """Serves resources by type, `_count` per page with `next` links, filtered by `_lastUpdated=gtX`."""

    def __init__(self) -> None:
        self.resources: dict[str, list[dict[str, Any]]] = {}
        self.fail_once: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.tokens_issued = 0
        self.assertions: list[dict[str, Any]] = []
        self.base = ""

    def load(self, bundle: dict[str, Any], last_updated: str) -> None:
        for entry in bundle["entry"]:
            resource = json.loads(json.dumps(entry["resource"]))
            resource["meta"] = {"lastUpdated": last_updated}
            # A server's resources refer to each other as Type/id, not urn:uuid.
            text = json.dumps(resource)
            for other in bundle["entry"]:
                r = other["resource"]
                text = text.replace(f"urn:uuid:{r['id']}", f"{r['resourceType']}/{r['id']}")
            self.resources.setdefault(resource["resourceType"], []).append(json.loads(text))

    def handler(self) -> type[BaseHTTPRequestHandler]:
        ehr = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                assertion = form["client_assertion"][0]
                claims = jwt.decode(assertion, PUBLIC_PEM, algorithms=["RS384"], audience=ehr.base + "/token")
                assert jwt.get_unverified_header(assertion)["kid"] == "key-1"
                assert form["grant_type"] == ["client_credentials"]
                assert claims["iss"] == claims["sub"] == "healthcrm"
                ehr.assertions.append(claims)
                ehr.tokens_issued += 1
                self._send(
                    200, {"access_token": f"token-{ehr.tokens_issued}", "expires_in": 300, "token_type": "bearer"}
                )

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                rtype = parts.path.rsplit("/", 1)[-1]
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ehr.log.append((rtype, parts.query))
                if not self.headers.get("Authorization", "").startswith("Bearer token-"):
                    return self._send(401, {"resourceType": "OperationOutcome"})
                if rtype in ehr.fail_once:
                    ehr.fail_once.discard(rtype)
                    return self._send(500, {"resourceType": "OperationOutcome"})
                items = ehr.resources.get(rtype, [])
                since = query.get("_lastUpdated", "")
                if since.startswith("gt"):
                    items = [r for r in items if r["meta"]["lastUpdated"] > since[2:]]
                count, offset = int(query.get("_count", 100)), int(query.get("_offset", 0))
                page = items[offset : offset + count]
                links = [{"relation": "self", "url": ehr.base + self.path}]
                if offset + count < len(items):
                    nxt = f"{ehr.base}/{rtype}?_count={count}&_offset={offset + count}"
                    if since:
                        nxt += f"&_lastUpdated={since}"
                    links.append({"relation": "next", "url": nxt})
                self._send(
                    200,
                    {
                        "resourceType": "Bundle",
                        "type": "searchset",
                        "total": len(items),
                        "link": links,
                        "entry": [
                            {"fullUrl": f"{ehr.base}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                            for r in page
                        ],
                    },
                )

        return Handler


@pytest.fixture
def ehr() -> Iterator[FakeEhr]:
    fake = FakeEhr()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)  # quick stop
    thread.start()
    yield fake
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


def _client(connection: FhirConnection) -> FhirClient:
    client = connection_client(connection, backoff=0.01)
    return client


def test_pull_pages_retries_and_moves_cursors(org_a, ehr, connection, monkeypatch) -> None:
    ehr.load(synthea_bundle(31, encounters=4), "2024-01-01T00:00:00Z")
    ehr.fail_once.add("Observation")  # one 500: retried with backoff
    monkeypatch.setattr("integrations.fhir.services.PULL_PAGE_SIZE", "5")
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=_client(connection))
    assert job.status == JobStatus.SUCCEEDED, job.report
    observation_requests = [q for t, q in ehr.log if t == "Observation"]
    assert len(observation_requests) >= 4  # the 500, then several pages through `next` links
    assert ehr.tokens_issued == 1 and ehr.assertions[0]["aud"] == ehr.base + "/token"
    with organization_context(org_a):
        assert Patient.objects.count() == 1
        assert Observation.objects.count() == job.report["counts"]["Observation"]["created"] > 5
        connection.refresh_from_db()
        assert connection.cursors["Observation"] == "2024-01-01T00:00:00Z"
        assert connection.last_success_at is not None and connection.last_error == ""

    # Incremental: only what changed since the cursor is asked for and imported.
    ehr.log.clear()
    ehr.load(synthea_bundle(32, encounters=1, mrn="SECOND"), "2024-02-01T00:00:00Z")
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=_client(connection))
    assert job.status == JobStatus.SUCCEEDED
    assert all("_lastUpdated=gt2024-01-01" in q for t, q in ehr.log if "_offset" not in q)
    assert job.report["counts"]["Patient"] == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    with organization_context(org_a):
        assert Patient.objects.count() == 2


def test_pull_reports_a_server_that_keeps_failing(org_a, ehr, connection, monkeypatch) -> None:
    ehr.load(synthea_bundle(33, encounters=1), "2024-01-01T00:00:00Z")
    client = _client(connection)
    client.max_retries = 1
    ehr.fail_once.update({"Patient"})
    monkeypatch.setattr(ehr, "fail_once", _Always({"Patient"}))
    job = fhir_pull_connection(organization=org_a, connection_id=connection.pk, client=client)
    assert job.status == JobStatus.FAILED and "Patient: The server answered 500" in job.error
    with organization_context(org_a):
        connection.refresh_from_db()
        assert "Patient" not in connection.cursors and connection.last_success_at is None
        assert "500" in connection.last_error


class _Always(set):
    def discard(self, item: Any) -> None:  # never forget: fails every time
        pass


def test_client_refuses_links_to_other_servers() -> None:
    client = FhirClient("https://ehr.example/fhir")
    with pytest.raises(FhirClientError) as error:
        client.get("https://elsewhere.example/fhir/Patient")
    assert error.value.permanent


def test_connection_pages(org_a, admin_user, connection, client_for, nurse_user) -> None:
    from django.urls import reverse

    client = client_for(admin_user)
    assert "Fake EHR" in client.get(reverse("integrations:fhir_connections")).content.decode()
    page = client.get(reverse("integrations:fhir_connection", args=[connection.pk])).content.decode()
    assert "SMART Backend Services" in page and "BEGIN PRIVATE KEY" not in page
    assert client_for(nurse_user).get(reverse("integrations:fhir_connection", args=[connection.pk])).status_code == 403
