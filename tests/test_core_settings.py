"""The core's settings are declared in healthcrm/settings.py (environment reader) and read as settings.X."""

from __future__ import annotations

import re
from pathlib import Path

from django.test import override_settings

from healthcrm.crypto import normalize_phone
from tests.test_settings import manage, production_env

REPO = Path(__file__).resolve().parent.parent


def test_the_core_reads_no_setting_through_getattr_with_a_default() -> None:
    # A default in code is a second, silent declaration (and the two drift apart).
    pattern = re.compile(r"getattr\(\s*settings\s*,")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "healthcrm").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_phone_numbers_without_a_country_code_belong_to_the_default_region() -> None:
    assert normalize_phone("(312) 555-0142") == "+13125550142"
    with override_settings(PHONE_DEFAULT_REGION="GB"):
        assert normalize_phone("020 7946 0018") == "+442079460018"
    assert normalize_phone("020 7946 0018", region="GB") == "+442079460018"


def test_an_unknown_phone_region_stops_start_up() -> None:
    result = manage("check", env=production_env(PHONE_DEFAULT_REGION="USA"))
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr
    assert "PHONE_DEFAULT_REGION" in last_line, last_line
    assert manage("check", env=production_env(PHONE_DEFAULT_REGION="ca")).returncode == 0
