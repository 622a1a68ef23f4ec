"""The staff shell kept every URL name and path when it moved out of the core."""

from __future__ import annotations

import pytest
from django.urls import resolve, reverse


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("dashboard", "/"),
        ("healthz", "/healthz"),
        ("organization_switch", "/organization/switch/"),
        ("mfa_verify", "/accounts/mfa/"),
        ("mfa_setup", "/accounts/mfa/setup/"),
        ("login", "/accounts/login/"),
    ],
)
def test_staff_pages_keep_their_names_and_paths(name: str, path: str) -> None:
    assert reverse(name) == path
    assert resolve(path).func.__module__.startswith(("staff.", "django.contrib.auth."))
