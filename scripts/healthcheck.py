#!/usr/bin/env python3
"""Container health probe: GET /healthz on the local gunicorn, exit 0 only on HTTP 200.

Used by docker-compose.yml's web healthcheck (python:3.11-slim has no curl). In production Django
redirects plain HTTP to HTTPS and checks the Host header, so the probe says it came through the
TLS proxy (X-Forwarded-Proto: https) and uses a host from ALLOWED_HOSTS.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def probe_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip()
        if host and host != "*":
            return host.lstrip(".")  # ".example.com" also allows "example.com"
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz",
        headers={"Host": probe_host(), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed local URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
