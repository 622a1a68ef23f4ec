"""FHIR Bulk Data Access (`$export`) over a FhirClient: kick-off, status polling, downloads, cleanup.

The flow of the IG (https://hl7.org/fhir/uv/bulkdata/export.html): a kick-off GET with
`Prefer: respond-async` answers 202 and a status URL (`Content-Location`); the status URL answers
202 (with `Retry-After` and `X-Progress`) while the server works, then 200 with the manifest
(`transactionTime`, `requiresAccessToken`, `output` and `error` files); each file is NDJSON; a DELETE
of the status URL tells the server it may discard the files. Waits honour `Retry-After` within the
pull's deadline: a wait that would pass it ends the pull at once, with a message saying so.
No request leaves the base URL's origin with the access token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from integrations.fhir.client import FhirClient, FhirClientError, PullDeadlineReached, seconds_text

DEFAULT_POLL_SECONDS = 5.0
MAX_MESSAGE = 300


@dataclass
class ExportFile:
    type: str
    url: str


@dataclass
class Manifest:
    transaction_time: str
    requires_access_token: bool
    output: list[ExportFile] = field(default_factory=list)
    error: list[ExportFile] = field(default_factory=list)


def outcome_message(response: requests.Response) -> str:
    """The first issue's text of an OperationOutcome body (diagnostics or details), or ''."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())[:MAX_MESSAGE]
    return ""


def retry_after(response: requests.Response) -> float:
    """Seconds from a `Retry-After` header (delta-seconds; an HTTP date or nothing -> the default)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    return DEFAULT_POLL_SECONDS


def _files(items: Any) -> list[ExportFile]:
    files = []
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and isinstance(item.get("type"), str):
            files.append(ExportFile(type=item["type"][:64], url=item["url"]))
    return files


class BulkExport:
    """One export of one connection. `kick_off`, then `wait` for the manifest, `download` its
    files, and `cleanup` (always) to let the server discard them."""

    def __init__(self, client: FhirClient, *, on_progress: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.status_url = ""
        self.on_progress = on_progress

    def kick_off(self, path: str, *, types: list[str], since: str = "") -> None:
        params = {"_type": ",".join(types)}
        if since:
            params["_since"] = since
        url = f"{self.client.base_url}/{path}"
        response = self.client._send("GET", url, params=params, headers={"Prefer": "respond-async"})
        if response.status_code != 202:
            message = outcome_message(response)
            said = f": {message}" if message else "."
            raise FhirClientError(
                f"The server refused the export (it answered {response.status_code}){said}", permanent=True
            )
        location = response.headers.get("Content-Location", "")
        status_url = urljoin(url, location) if location else ""
        if not status_url or not self.client._same_origin(status_url):
            raise FhirClientError(
                "The server accepted the export without a status URL on its own origin.", permanent=True
            )
        self.status_url = status_url

    def wait(self) -> Manifest:
        """Poll the status URL until the manifest, honouring `Retry-After` within the deadline."""
        while True:
            # 429 is how a server says "too often": retried; any 5xx here means the export failed.
            response = self.client._send("GET", self.status_url, retry={429})
            if response.status_code == 200:
                return self._manifest(response)
            if response.status_code != 202:
                message = outcome_message(response)
                said = f": {message}" if message else "."
                raise FhirClientError(
                    f"The export failed on the server (status {response.status_code}){said}", permanent=True
                )
            progress = " ".join((response.headers.get("X-Progress") or "").split())[:100]
            if self.on_progress is not None:
                self.on_progress(progress)
            wait = retry_after(response)
            left = self.client._time_left()
            if left is not None and left <= wait:
                raise PullDeadlineReached(
                    f"The export was still running on the server{f' ({progress})' if progress else ''}, which asked "
                    f"to be checked again in {seconds_text(wait)} s: after the pull's deadline "
                    f"({seconds_text(self.client.deadline_seconds or 0)} s). Nothing was imported from it; "
                    "the next pull starts a new export."
                )
            self.client.sleep(wait)

    def _manifest(self, response: requests.Response) -> Manifest:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("transactionTime"), str):
            raise FhirClientError("The export's manifest is not the JSON the Bulk Data IG describes.", permanent=True)
        return Manifest(
            transaction_time=body["transactionTime"][:40],
            requires_access_token=bool(body.get("requiresAccessToken")),
            output=_files(body.get("output")),
            error=_files(body.get("error")),
        )

    def download(self, file: ExportFile, *, with_token: bool, max_bytes: int) -> bytes:
        """One output file (NDJSON), at most `max_bytes`; the token is sent only on the base URL's origin."""
        url = urljoin(self.status_url, file.url)
        same = self.client._same_origin(url)
        if with_token and not same:
            raise FhirClientError(
                "An export file that needs the access token is on another server: not fetched.", permanent=True
            )
        if not url.startswith(("https://", "http://")):
            raise FhirClientError("An export file's URL is not HTTP(S).", permanent=True)
        response = self.client._send(
            "GET", url, headers={"Accept": "application/fhir+ndjson"}, auth=with_token, stream=True
        )
        try:
            if response.status_code != 200:
                raise FhirClientError(
                    f"A {file.type} file could not be downloaded ({response.status_code}).", permanent=True
                )
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FhirClientError(
                        f"A {file.type} file is larger than {max_bytes} bytes: not imported.", permanent=True
                    )
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            response.close()

    def cleanup(self) -> None:
        """DELETE the status URL (best effort): the server may discard the files, or stop the export."""
        if not self.status_url:
            return
        client = self.client
        # One short request without retries, even at the deadline.
        saved = client.deadline, client.timeout, client.max_retries
        client.deadline, client.timeout, client.max_retries = None, min(client.timeout, 5.0), 0
        try:
            client._send("DELETE", self.status_url, retry=set())
        except FhirClientError:
            pass
        finally:
            client.deadline, client.timeout, client.max_retries = saved
