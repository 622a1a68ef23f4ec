"""A loopback FHIR server for pull tests: standard search paging with `next` links, `_lastUpdated`
filters, SMART Backend Services tokens, a 500 once, and a server that accepts and never answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)


CAPABILITY: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "software": {"name": "Loopback EHR", "version": "1.2"},
    "rest": [
        {
            "mode": "server",
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
            ],
            "resource": [
                {"type": "Patient", "searchParam": [{"name": "_lastUpdated", "type": "date"}]},
                {"type": "Observation", "searchParam": [{"name": "_lastUpdated", "type": "date"}]},
            ],
        }
    ],
}


class FakeEhr:
    """Serves resources by type, `_count` per page with `next` links, filtered by `_lastUpdated=gtX`.

    `hang` holds types whose searches are accepted and never answered (until `release` is set, at
    teardown); `hung` is set when such a request arrives. `hold` holds types whose first search
    waits for `release` and then answers, to keep a pull running while a test looks at it.
    """

    def __init__(self) -> None:
        self.resources: dict[str, list[dict[str, Any]]] = {}
        self.fail_once: set[str] = set()
        self.open = False  # True: searches need no token
        self.hang: set[str] = set()
        self.hold: set[str] = set()
        self.hung = threading.Event()
        self.release = threading.Event()
        self.log: list[tuple[str, str]] = []
        self.tokens_issued = 0
        self.assertions: list[dict[str, Any]] = []
        # The JWK Set the client registered (as an EHR fetches it from the client's JWKS URL);
        # None: the test key pair (PUBLIC_PEM, kid "key-1"). A token request signed by a key not
        # in the set answers 401, as an EHR refuses an unregistered key.
        self.jwks: dict[str, Any] | None = None
        self.base = ""
        # Bulk Data $export: each kick-off (its query and headers) is recorded; its status URL
        # answers 202 (Retry-After, X-Progress) `export_polls` times, then the manifest.
        self.kickoffs: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.export_polls = 2
        self.export_retry_after = "1"
        self.export_refuse: tuple[int, dict[str, Any]] | None = None
        self.export_error_file = False
        self.export_status_fails = False
        self.polls = 0
        self.downloads: list[tuple[str, str]] = []  # (path, Authorization header)
        self.deletes: list[str] = []
        self.metadata_status = 200
        self.transaction_times = ["2024-03-01T12:00:00.000Z", "2024-04-01T12:00:00.000Z"]

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

            def do_DELETE(self) -> None:  # noqa: N802
                ehr.deletes.append(urlsplit(self.path).path)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _export(self, parts: Any, query: dict[str, str]) -> None:
                """Kick-off, status and files of a Bulk Data export (the file URLs need the token)."""
                path = parts.path
                if path.endswith("$export"):
                    ehr.kickoffs.append((path, query, {k: v for k, v in self.headers.items()}))
                    if ehr.export_refuse is not None:
                        return self._send(*ehr.export_refuse)
                    if "$export" in ehr.fail_once:
                        ehr.fail_once.discard("$export")
                        return self._send(503, {"resourceType": "OperationOutcome"})
                    assert self.headers["Prefer"] == "respond-async"
                    assert self.headers["Accept"] == "application/fhir+json"
                    number = len(ehr.kickoffs)
                    self.send_response(202)
                    self.send_header("Content-Location", f"{ehr.base}/export-status/{number}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                number = int(path.split("/")[2])
                types, since = (
                    ehr.kickoffs[number - 1][1]["_type"].split(","),
                    ehr.kickoffs[number - 1][1].get("_since"),
                )
                if path.startswith("/export-status/"):
                    ehr.polls += 1
                    if ehr.export_status_fails:
                        return self._send(
                            500, {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "Export job crashed"}]}
                        )
                    if ehr.polls % (ehr.export_polls + 1):
                        self.send_response(202)
                        self.send_header("Retry-After", ehr.export_retry_after)
                        self.send_header("X-Progress", f"{50 * ehr.polls}% done")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    output = [
                        {"type": t, "url": f"{ehr.base}/export-files/{number}/{t}.ndjson"}
                        for t in reversed(types)  # the server's order is not the import's
                        if ehr.resources.get(t)
                    ]
                    errors = [{"type": "OperationOutcome", "url": f"{ehr.base}/export-files/{number}/errors.ndjson"}]
                    return self._send(
                        200,
                        {
                            "transactionTime": ehr.transaction_times[number - 1],
                            "request": f"{ehr.base}/$export",
                            "requiresAccessToken": True,
                            "output": output,
                            "error": errors if ehr.export_error_file else [],
                        },
                    )
                rtype = path.rsplit("/", 1)[-1].removesuffix(".ndjson")
                ehr.downloads.append((path, self.headers.get("Authorization", "")))
                if not self.headers.get("Authorization", "").startswith("Bearer token-"):
                    return self._send(401, {"resourceType": "OperationOutcome"})
                if rtype == "errors":
                    outcome = {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {"severity": "error", "code": "processing", "diagnostics": "Observation/x9 unreadable"}
                        ],
                    }
                    lines = [outcome]
                else:
                    lines = [r for r in ehr.resources.get(rtype, []) if not since or r["meta"]["lastUpdated"] > since]
                data = "".join(json.dumps(r) + "\n" for r in lines).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+ndjson")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None

            def do_POST(self) -> None:  # noqa: N802
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                assertion = form["client_assertion"][0]
                kid = jwt.get_unverified_header(assertion).get("kid")
                if ehr.jwks is None:
                    assert kid == "key-1"
                    key: Any = PUBLIC_PEM
                else:
                    keys = {k["kid"]: k for k in ehr.jwks["keys"]}
                    if kid not in keys:
                        self._send(401, {"error": "invalid_client", "error_description": "unknown key"})
                        return
                    key = jwt.PyJWK.from_dict(keys[kid]).key
                claims = jwt.decode(assertion, key, algorithms=["RS384"], audience=ehr.base + "/token")
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
                if rtype == "metadata":  # public, as servers serve it, unless a test says otherwise
                    return self._send(ehr.metadata_status, CAPABILITY)
                if parts.path.startswith(("/export-status/", "/export-files/")):
                    return self._export(parts, query)
                if not ehr.open and not self.headers.get("Authorization", "").startswith("Bearer token-"):
                    return self._send(401, {"resourceType": "OperationOutcome"})
                if parts.path.endswith("$export"):
                    return self._export(parts, query)
                if rtype in ehr.hang:
                    ehr.hung.set()
                    ehr.release.wait(30)
                    return None  # closes the connection without a word
                if rtype in ehr.hold:
                    ehr.hold.discard(rtype)
                    ehr.hung.set()
                    ehr.release.wait(30)
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
