"""A small FHIR REST client for pulls: search with paging, retries with backoff, three auth modes.

Errors say whether a retry can help (`FhirClientError.permanent`). Only the server's own `next`
links are followed, and only on the base URL's origin: references inside resources are never
fetched.
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
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


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
            raise FhirClientError(f"Token endpoint unreachable ({type(exc).__name__}).", permanent=False) from None
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.bearer_token = bearer_token
        self.smart = smart
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.sleep = sleep
        self.requests_made = 0

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json"}
        if self.smart is not None:
            headers["Authorization"] = f"Bearer {self.smart.token(self.session, self.timeout)}"
        elif self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(self.base_url), urlsplit(url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a URL on the server, retrying what can succeed later (5xx, 429, network) with backoff."""
        if not self._same_origin(url):
            raise FhirClientError("Refusing to follow a link to another server.", permanent=True)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            try:
                self.requests_made += 1
                response = self.session.get(url, params=params, headers=self._headers(), timeout=self.timeout)
            except requests.RequestException as exc:
                error = FhirClientError(f"Server unreachable ({type(exc).__name__}).", permanent=False)
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise FhirClientError(
                            "The server answered with something that is not JSON.", permanent=True
                        ) from None
                if response.status_code == 401 and self.smart is not None and not refreshed:
                    self.smart.invalidate()
                    refreshed = True
                    attempt -= 1
                    continue
                error = FhirClientError(
                    f"The server answered {response.status_code}.",
                    permanent=response.status_code not in RETRY_STATUSES,
                )
            if error.permanent or attempt > self.max_retries:
                raise error
            self.sleep(self.backoff * 2 ** (attempt - 1))

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
