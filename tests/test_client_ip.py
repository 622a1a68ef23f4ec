"""Client IPs in the access log and audit log: X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from django.test import RequestFactory

from healthcrm.security import AuditlogMiddleware, client_ip


def _request(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_forwarded_for_is_ignored_from_an_untrusted_peer(settings) -> None:
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"
    assert AuditlogMiddleware._get_remote_addr(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_forwarded_for_is_used_behind_a_trusted_proxy_and_spoofed_hops_are_skipped(settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.2", "10.0.0.3"]
    # The client claimed 1.2.3.4; our proxies saw 198.51.100.9 and appended it.
    request = _request("10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.3")
    assert client_ip(request) == "198.51.100.9"
    assert client_ip(_request("10.0.0.2", "garbage")) == "10.0.0.2"
