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
                if not ehr.open and not self.headers.get("Authorization", "").startswith("Bearer token-"):
                    return self._send(401, {"resourceType": "OperationOutcome"})
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
