"""Production settings: `check --deploy` is clean, and every unsafe or malformed value stops start-up.

Settings are read once per process, so each case runs `manage.py` in a subprocess with its own
environment. No database is needed: `check` does not connect.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent

# Variables that would leak from the developer's or CI's environment into the subprocess.
_SETTINGS_VARIABLES = (
    "HEALTHCRM_ENV",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "FIELD_ENCRYPTION_KEY",
    "BLIND_INDEX_KEY",
    "APP_DATABASE_PASSWORD",
    "DATABASE_LOGIN",
    "EMAIL_URL",
    "TWILIO_ENABLED",
    "SMS_BACKEND",
    "ENGAGEMENT_SMS_BACKEND",
    "PUBLIC_BASE_URL",
    "ENGAGEMENT_SENDING_STALE_AFTER_SECONDS",
    "DJANGO_SETTINGS_MODULE",
    # Set by the browser fixture in this process (Playwright's event loop); never in production.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def production_env(**overrides: str | None) -> dict[str, str]:
    """A complete, valid production environment; an override of None removes the variable."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SETTINGS_VARIABLES and not any(key == f"{name}_FILE" for name in _SETTINGS_VARIABLES)
    }
    env.update(
        HEALTHCRM_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(60)[:60],
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=secrets.token_hex(32),
        APP_DATABASE_PASSWORD=secrets.token_urlsafe(24),
        ALLOWED_HOSTS="crm.example.org",
        EMAIL_URL="smtp+tls://crm:secret@mail.example.org:587",
        TWILIO_ENABLED="true",
        PUBLIC_BASE_URL="https://crm.example.org",
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py, fixed arguments
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_deploy_check_has_no_issues() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output, output


def test_development_defaults_pass_the_plain_check() -> None:
    env = production_env(
        HEALTHCRM_ENV="development",
        SECRET_KEY=None,
        FIELD_ENCRYPTION_KEY=None,
        BLIND_INDEX_KEY=None,
        APP_DATABASE_PASSWORD=None,
        ALLOWED_HOSTS=None,
    )
    result = manage("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "named", "message"),
    [
        pytest.param({"SECRET_KEY": None}, "SECRET_KEY", "refuses the development value", id="dev-secret-key"),
        pytest.param(
            {"BLIND_INDEX_KEY": None},
            "BLIND_INDEX_KEY",
            "refuses the development value",
            id="dev-blind-index-key",
        ),
        pytest.param(
            {"FIELD_ENCRYPTION_KEY": None},
            "FIELD_ENCRYPTION_KEY",
            "refuses the development value",
            id="dev-field-key",
        ),
        pytest.param(
            {"APP_DATABASE_PASSWORD": None},
            "APP_DATABASE_PASSWORD",
            "refuses the development value",
            id="dev-db-password",
        ),
        pytest.param({"DEBUG": "maybe"}, "DEBUG", "is not a boolean", id="debug-typo"),
        pytest.param({"DEBUG": "true"}, "DEBUG", "must be off", id="debug-on"),
        pytest.param({"HEALTHCRM_ENV": "staging"}, "HEALTHCRM_ENV", "must be one of", id="unknown-env"),
        pytest.param(
            {"FIELD_ENCRYPTION_KEY": "not-a-key"},
            "FIELD_ENCRYPTION_KEY",
            "Fernet key",
            id="malformed-field-key",
        ),
        pytest.param({"FIELD_ENCRYPTION_KEY": ""}, "FIELD_ENCRYPTION_KEY", "is empty", id="empty-field-key"),
        pytest.param({"BLIND_INDEX_KEY": "short"}, "BLIND_INDEX_KEY", "at least 32", id="short-blind-index-key"),
        pytest.param({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS", "is required", id="no-allowed-hosts"),
        pytest.param({"EMAIL_URL": None}, "EMAIL_URL", "must name an SMTP server", id="default-console-email"),
        pytest.param({"EMAIL_URL": "console://"}, "EMAIL_URL", "must name an SMTP server", id="console-email"),
        pytest.param({"EMAIL_URL": "locmem://"}, "EMAIL_URL", "must name an SMTP server", id="locmem-email"),
        pytest.param(
            {"EMAIL_URL": "smtp://crm:secret@mail.example.org:25"},
            "EMAIL_URL",
            "plain smtp://",
            id="plain-smtp-to-remote-host",
        ),
        pytest.param(
            {"TWILIO_ENABLED": None},
            "SMS_BACKEND",
            "development sink",
            id="sms-sink-in-production",
        ),
        pytest.param(
            {"TWILIO_ENABLED": "true", "SMS_BACKEND": "outbox_sink"},
            "SMS_BACKEND",
            "development sink",
            id="sms-sink-named-in-production",
        ),
        pytest.param({"PUBLIC_BASE_URL": None}, "PUBLIC_BASE_URL", "must be the site's https://", id="no-public-url"),
        pytest.param(
            {"PUBLIC_BASE_URL": "http://crm.example.org"},
            "PUBLIC_BASE_URL",
            "must be the site's https://",
            id="plain-http-public-url",
        ),
        pytest.param(
            {"ENGAGEMENT_SENDING_STALE_AFTER_SECONDS": "20"},
            "ENGAGEMENT_SENDING_STALE_AFTER_SECONDS",
            "must exceed the longest send (48 s",
            id="stale-time-below-the-longest-send",
        ),
        pytest.param(
            {"SESSION_IDLE_TIMEOUT": "15m"},
            "SESSION_IDLE_TIMEOUT",
            "not a whole number",
            id="idle-timeout-typo",
        ),
    ],
)
def test_unsafe_or_malformed_settings_stop_start_up(overrides: dict[str, str | None], named: str, message: str) -> None:
    result = manage("check", env=production_env(**overrides))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr
    assert named in last_line and message in last_line, last_line


@pytest.mark.parametrize(
    "email_url",
    [
        "smtp+tls://crm:secret@mail.example.org:587",
        "smtp+ssl://mail.example.org:465",
        "smtp://localhost:25",
        "smtp://127.0.0.1:1025",
    ],
)
def test_production_accepts_encrypted_smtp_or_a_loopback_relay(email_url: str) -> None:
    result = manage("check", env=production_env(EMAIL_URL=email_url))
    assert result.returncode == 0, result.stdout + result.stderr


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text(secrets.token_urlsafe(60)[:60] + "\n")
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=production_env(SECRET_KEY=None, SECRET_KEY_FILE=str(secret)),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unreadable_secret_file_is_named() -> None:
    result = manage("check", env=production_env(SECRET_KEY=None, SECRET_KEY_FILE="/nonexistent/secret"))
    assert result.returncode != 0
    assert "SECRET_KEY_FILE" in result.stderr.strip().splitlines()[-1]


def test_a_refused_request_logs_one_line_without_a_traceback(client_for: Any, analyst_user: Any, caplog: Any) -> None:
    """403s are routine (a role opening a page it may not): one line each, so real errors stand out."""
    import logging

    from django.urls import reverse

    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client_for(analyst_user).get(reverse("patients:list")).status_code == 403

    refused = [r for r in caplog.records if r.name == "django.request"]
    assert [r.getMessage() for r in refused] == ["Forbidden (Permission denied): /patients/"]
    assert refused[0].exc_info is None and caplog.text.count("\n") == 1
    assert "Traceback" not in caplog.text


def test_a_patient_link_token_never_reaches_the_request_log(client: Any, caplog: Any) -> None:
    """A signed link works for whoever holds it: the 4xx line Django logs for it keeps no token."""
    import logging

    token = "eyJ0b2tlbiI6InNlY3JldCJ9:1tAbCd:NotARealSignature"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get(f"/engagement/l/{token}/")

    assert caplog.records, "the refused link is logged"
    assert token not in caplog.text and "NotARealSignature" not in caplog.text
    assert "/engagement/l/[token]/" in caplog.text


@pytest.mark.parametrize("instant", ["08:00:00", "08:00:09", "20:59:55", "21:00:00"])
def test_the_system_checks_pass_at_any_time_of_day(instant: str) -> None:
    """Django warns about a fixed time default within 10 s of it (fields.W161): literal quiet-hours
    defaults made `check --deploy --fail-level WARNING` fail at 08:00 and 21:00 UTC."""
    import time_machine
    from django.core import checks

    hour, minute, second = map(int, instant.split(":"))
    with time_machine.travel(datetime(2026, 12, 1, hour, minute, second, tzinfo=UTC), tick=False):
        found = [message for message in checks.run_checks() if message.level >= checks.WARNING]
    assert [(m.id, str(m.obj)) for m in found] == []


# -- Outreach: the stale time is derived from the send's own limits (exactly-once rests on it) --

_PRINT_TIMES = (
    "from django.conf import settings as s; print(s.ENGAGEMENT_LONGEST_SEND, s.ENGAGEMENT_SENDING_STALE_AFTER)"
)


@pytest.mark.parametrize(
    ("overrides", "longest", "stale"),
    [
        ({}, 48.0, 75.0),  # 4 rounds (50 / 16) x (2 s limiter + 10 s timeout)
        ({"ENGAGEMENT_SEND_BATCH": "100", "TWILIO_TIMEOUT_SECONDS": "20"}, 154.0, 207.5),  # 7 x 22
        ({"ENGAGEMENT_SENDING_STALE_AFTER_SECONDS": "600"}, 48.0, 600.0),
    ],
)
def test_the_stale_time_follows_the_longest_send(overrides: dict[str, str], longest: float, stale: float) -> None:
    result = manage("shell", "--no-imports", "-c", _PRINT_TIMES, env=production_env(**overrides))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(longest), str(stale)]


def test_check_deploy_reports_the_sink_and_a_plain_public_address(settings) -> None:
    from engagement.checks import outreach_deploy_check

    settings.ENGAGEMENT_SMS_BACKEND = settings.ENGAGEMENT_SMS_BACKENDS["outbox_sink"]
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    assert [m.id for m in outreach_deploy_check()] == ["engagement.W001", "engagement.W002"]
    settings.ENGAGEMENT_SMS_BACKEND = settings.ENGAGEMENT_SMS_BACKENDS["twilio"]
    settings.PUBLIC_BASE_URL = "https://crm.example.org"
    assert outreach_deploy_check() == []
