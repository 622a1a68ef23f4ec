"""The FHIR and device settings are declared once, in healthcrm/settings.py, read from the
environment with the strict readers (the code reads them as plain `settings.X`)."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.test_settings import manage, production_env

PRINT = (
    "from django.conf import settings; "
    "print(settings.FHIR_IMPORT_MAX_UPLOAD_BYTES, settings.FHIR_IMPORT_EAGER, settings.DEVICE_ENDPOINT_REQUIRE_HTTPS)"
)


def test_development_defaults() -> None:
    assert settings.FHIR_IMPORT_MAX_UPLOAD_BYTES == 64 * 1024 * 1024
    assert settings.DEVICE_ENDPOINT_REQUIRE_HTTPS is False  # not production


def test_production_requires_https_from_devices_and_the_environment_overrides() -> None:
    result = manage("shell", "-c", PRINT, env=production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [str(64 * 1024 * 1024), "False", "True"]
    overridden = production_env(
        FHIR_IMPORT_MAX_UPLOAD_BYTES="1000", FHIR_IMPORT_EAGER="yes", DEVICE_ENDPOINT_REQUIRE_HTTPS="off"
    )
    result = manage("shell", "-c", PRINT, env=overridden)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["1000", "True", "False"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FHIR_IMPORT_EAGER", "sometimes"),
        ("DEVICE_ENDPOINT_REQUIRE_HTTPS", "yess"),
        ("FHIR_IMPORT_MAX_UPLOAD_BYTES", "1MB"),
    ],
)
def test_a_malformed_value_stops_start_up(name: str, value: str) -> None:
    result = manage("check", env=production_env(**{name: value}))
    assert result.returncode != 0
    assert name in result.stderr
