"""A local fake of Twilio's Messages REST API, for tests and the dispatch bench.

    with FakeTwilio(delay=0.02, fail_share=0.2, fail_status=500) as fake:
        settings.TWILIO_API_URL = fake.url
        ...
        fake.accepted  # every message it accepted, in order

A threaded http.server on 127.0.0.1:0. POST /2010-04-01/Accounts/<sid>/Messages.json records the
form (To, From, Body, StatusCallback, MessagingServiceSid) and answers 201 with Twilio-shaped JSON;
GET on the same path lists accepted messages (filter `To`; a `DateSent` filter finds none, since a
queued message has no DateSent yet, as on the real API). Failure modes, chosen per request:
`fail_share` of requests (deterministic: every k-th) answer `fail_status` (429 or 500) without
recording; `hang` makes requests wait `hang` seconds before answering (the client times out, but
the message *is* accepted, as happens with a real provider); `invalid_numbers` answer 400 with
error 21211 and `opted_out_numbers` 400 with error 21610. Like the real API it never accepts an
incomplete request: a body shorter than its Content-Length (the sender died mid-request) is dropped,
and a form without To or Body answers 400 (21604 / 21602).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# How often serve_forever checks for shutdown (the stdlib's default, 0.5 s, added up to half a
# second to every test that used the fake). Requests are answered at once whatever the value.
SHUTDOWN_POLL_SECONDS = 0.02


@dataclass
class Accepted:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    messaging_service_sid: str
    auth_user: str
    at: float
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


class FakeTwilio:
    def __init__(
        self,
        *,
        delay: float = 0.0,
        fail_share: float = 0.0,
        fail_status: int = 500,
        hang: float = 0.0,
        hang_share: float = 0.0,
        invalid_numbers: set[str] | None = None,
        opted_out_numbers: set[str] | None = None,
    ) -> None:
        self.delay = delay
        self.fail_share = fail_share
        self.fail_status = fail_status
        self.hang = hang
        self.hang_share = hang_share
        self.invalid_numbers = invalid_numbers or set()
        self.opted_out_numbers = opted_out_numbers or set()
        self.accepted: list[Accepted] = []
        self.requests = 0
        self.failed = 0
        self.date_sent_filtered = 0  # list requests that filtered on DateSent (and so found nothing)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeTwilio:
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever to notice, at most one poll interval; handler threads
        # are daemons (a hanging request or a kept-alive connection does not hold the stop up).
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bodies_to(self, number: str) -> list[str]:
        with self._lock:
            return [m.body for m in self.accepted if m.to == number]

    def _every(self, share: float, n: int) -> bool:
        if share <= 0:
            return False
        period = max(1, round(1 / share))
        return n % period == 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _account(self) -> str | None:
                parts = urlsplit(self.path).path.split("/")
                # /2010-04-01/Accounts/<sid>/Messages.json
                if len(parts) == 5 and parts[2] == "Accounts" and parts[4] == "Messages.json":
                    return parts[3]
                return None

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                account = self._account()
                if account is None:
                    self._send(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                query = parse_qs(urlsplit(self.path).query)
                to = (query.get("To") or [""])[0]
                with fake._lock:
                    found = [m for m in fake.accepted if m.account_sid == account and (not to or m.to == to)]
                if any(key in query for key in ("DateSent", "DateSent>", "DateSent<")):
                    # As on the real API: a DateSent filter compares DateSent, which a message
                    # still queued does not have yet, so it is never listed (every message here
                    # stays queued).
                    fake.date_sent_filtered += 1
                    found = []
                self._send(
                    200,
                    {
                        "messages": [_resource(m) for m in found],
                        "next_page_uri": None,
                        "page": 0,
                        "page_size": 50,
                        "uri": self.path,
                        "first_page_uri": self.path,
                    },
                )

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # The client died between its headers and its body (a worker killed mid-send:
                    # urllib3 sends them separately). A real provider never acts on half a request.
                    self.close_connection = True
                    return
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                account = self._account()
                if account is None:
                    self._send(404, {"code": 20404, "message": "Not found", "status": 404})
                    return
                with fake._lock:
                    fake.requests += 1
                    n = fake.requests
                if fake.delay:
                    time.sleep(fake.delay)
                if fake._every(fake.fail_share, n):
                    with fake._lock:
                        fake.failed += 1
                    code = 20429 if fake.fail_status == 429 else 20500
                    self._send(fake.fail_status, {"code": code, "message": "Try again", "status": fake.fail_status})
                    return
                to = form.get("To", "")
                if not to or not form.get("Body"):
                    missing = "To" if not to else "Body"
                    code = 21604 if not to else 21602
                    self._send(400, {"code": code, "message": f"A '{missing}' parameter is required.", "status": 400})
                    return
                if to in fake.invalid_numbers:
                    self._send(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
                    return
                if to in fake.opted_out_numbers:
                    self._send(
                        400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}
                    )
                    return
                auth = self.headers.get("Authorization", "")
                user = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)[0] if " " in auth else ""
                message = Accepted(
                    sid="SM" + secrets.token_hex(16),
                    account_sid=account,
                    to=to,
                    from_=form.get("From", ""),
                    body=form.get("Body", ""),
                    status_callback=form.get("StatusCallback", ""),
                    messaging_service_sid=form.get("MessagingServiceSid", ""),
                    auth_user=user,
                    at=time.monotonic(),
                )
                with fake._lock:
                    fake.accepted.append(message)
                if fake.hang and fake._every(fake.hang_share, n):
                    time.sleep(fake.hang)
                # The client may have given up waiting: the message was accepted all the same.
                with contextlib.suppress(OSError):
                    self._send(201, _resource(message))

        return Handler


def _resource(m: Accepted) -> dict[str, Any]:
    return {
        "sid": m.sid,
        "account_sid": m.account_sid,
        "to": m.to,
        "from": m.from_ or None,
        "messaging_service_sid": m.messaging_service_sid or None,
        "body": m.body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": format_datetime(m.created),
        "date_updated": format_datetime(m.created),
        "date_sent": None,
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{m.account_sid}/Messages/{m.sid}.json",
    }
