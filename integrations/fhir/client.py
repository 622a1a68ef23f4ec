"""A small FHIR REST client for pulls: search with paging, retries with backoff, three auth modes.

Errors say whether a retry can help (`FhirClientError.permanent`) and whether the server as a
whole is not answering (`server_down`: unreachable, or it accepted the connection and said
nothing), in which case asking for the next resource type is pointless. Every request waits at
most `timeout` seconds, and none starts after the `deadline` (a `clock()` value) of the pull.
Only the server's own `next` links are followed, and only on the base URL's origin: references
inside resources are never fetched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

RETRY_STATUSES = {429, 500, 502, 503, 504}


class FhirClientError(Exception):
    def __init__(self, message: str, *, permanent: bool, server_down: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.server_down = server_down


class PullDeadlineReached(FhirClientError):
    """The pull's deadline passed: no further request is made (the next run resumes)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False, server_down=True)


def seconds_text(value: float) -> str:
    """30.0 -> '30', 0.25 -> '0.25': how long we waited, as people read it."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def transport_error(exc: requests.RequestException, timeout: float, what: str = "The server") -> FhirClientError:
    """What a network failure means, said accurately: a hung server is not an unreachable one."""
    if isinstance(exc, requests.ConnectTimeout):
        reason = f"{what} did not accept the connection within {seconds_text(timeout)} s (unreachable)."
    elif isinstance(exc, requests.Timeout):
        reason = f"{what} accepted the connection and did not answer within {seconds_text(timeout)} s."
    elif isinstance(exc, requests.ConnectionError):
        reason = f"{what} is unreachable ({type(exc).__name__})."
    else:
        return FhirClientError(f"{what} could not be asked ({type(exc).__name__}).", permanent=False)
    return FhirClientError(reason, permanent=False, server_down=True)


class SmartBackendAuth:
    """SMART Backend Services: a client_credentials grant with an RS384-signed JWT assertion."""

    def __init__(
        self, *, token_url: str, client_id: str, private_key_pem: str, key_id: str = "", scope: str = ""
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.private_key_pem = private_key_pem
        self.key_id = key_id
        self.scope = scope
        self._token: str | None = None
        self._expires = 0.0

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.private_key_pem, algorithm="RS384", headers=headers)

    def token(self, session: requests.Session, timeout: float) -> str:
        if self._token and time.time() < self._expires - 30:
            return self._token
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(),
        }
        if self.scope:
            data["scope"] = self.scope
        try:
            response = session.post(self.token_url, data=data, timeout=timeout)
        except requests.RequestException as exc:
            raise transport_error(exc, timeout, "The token endpoint") from None
        if response.status_code != 200:
            raise FhirClientError(
                f"Token endpoint answered {response.status_code}.", permanent=response.status_code not in RETRY_STATUSES
            )
        payload = response.json()
        self._token = str(payload["access_token"])
        self._expires = time.time() + float(payload.get("expires_in", 300))
        return self._token

    def invalidate(self) -> None:
        self._token = None


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        bearer_token: str = "",
        smart: SmartBackendAuth | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bearer_token = bearer_token
        self.smart = smart
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.deadline = deadline
        self.deadline_seconds: float | None = None
        self.clock = clock
        self.requests_made = 0

    def start_deadline(self, seconds: float) -> None:
        """No request starts more than `seconds` from now, and none waits past that."""
        self.deadline_seconds = seconds
        self.deadline = self.clock() + seconds

    def _deadline_reached(self, last_error: FhirClientError | None) -> PullDeadlineReached:
        before = f"{last_error} " if last_error is not None else ""
        length = f" ({seconds_text(self.deadline_seconds)} s)" if self.deadline_seconds is not None else ""
        return PullDeadlineReached(f"{before}The pull reached its deadline{length}: no further request was made.")

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def _request_timeout(self) -> float:
        """The per-request timeout, cut to what is left of the deadline."""
        left = self._time_left()
        return self.timeout if left is None else max(0.001, min(self.timeout, left))

    def _check_deadline(self, last_error: FhirClientError | None = None) -> None:
        left = self._time_left()
        if left is not None and left <= 0:
            raise self._deadline_reached(last_error)

    def _headers(self, timeout: float) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json"}
        if self.smart is not None:
            headers["Authorization"] = f"Bearer {self.smart.token(self.session, timeout)}"
        elif self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(self.base_url), urlsplit(url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        retry: frozenset[int] | set[int] = RETRY_STATUSES,
        stream: bool = False,
    ) -> requests.Response:
        """One request, retried with backoff while it can succeed later (`retry` statuses, network).

        Returns the response of any other status; raises when retries or the deadline run out.
        """
        attempt = 0
        refreshed = False
        error: FhirClientError | None = None
        while True:
            attempt += 1
            self._check_deadline(error)
            timeout = self._request_timeout()
            sent = self._headers(timeout) if auth else {"Accept": "application/fhir+json"}
            sent.update(headers or {})
            try:
                self.requests_made += 1
                response = self.session.request(
                    method, url, params=params, headers=sent, timeout=timeout, stream=stream
                )
            except requests.RequestException as exc:
                error = transport_error(exc, timeout)
            else:
                if response.status_code == 401 and auth and self.smart is not None and not refreshed:
                    self.smart.invalidate()
                    refreshed = True
                    attempt -= 1
                    continue
                if response.status_code not in retry:
                    return response
                response.close()  # a streamed body is not read: free its connection before retrying
                error = FhirClientError(f"The server answered {response.status_code}.", permanent=False)
            if attempt > self.max_retries:
                raise error
            wait = self.backoff * 2 ** (attempt - 1)
            left = self._time_left()
            if left is not None and left <= wait:
                raise self._deadline_reached(error)
            self.sleep(wait)

    def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a URL on the server, retrying what can succeed later (5xx, 429, network) with backoff."""
        if not self._same_origin(url):
            raise FhirClientError("Refusing to follow a link to another server.", permanent=True)
        response = self._send("GET", url, params=params)
        if response.status_code != 200:
            raise FhirClientError(f"The server answered {response.status_code}.", permanent=True)
        try:
            return response.json()
        except ValueError:
            raise FhirClientError("The server answered with something that is not JSON.", permanent=True) from None

    def search(self, resource_type: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Each page (a searchset Bundle) of a search, following `next` links."""
        url: str | None = f"{self.base_url}/{resource_type}"
        page_params: dict[str, str] | None = params
        while url:
            page = self.get(url, page_params)
            if page.get("resourceType") != "Bundle":
                raise FhirClientError("A search answered with something that is not a Bundle.", permanent=True)
            yield page
            url = next(
                (
                    link.get("url")
                    for link in page.get("link") or []
                    if isinstance(link, dict) and link.get("relation") == "next"
                ),
                None,
            )
            page_params = None
