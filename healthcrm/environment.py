"""Strict readers for settings taken from the environment.

Every reader names the variable in its error, so a missing or malformed setting stops start-up
with a message an operator can act on. Secrets may come from ``NAME_FILE`` (Docker/Kubernetes
secrets) instead of ``NAME``.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_UNSET = object()


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE points to {file_name!r}, which cannot be read: {exc}") from None
    return os.environ.get(name)


def env_str(name: str, default: str | object = _UNSET) -> str:
    value = _raw(name)
    if value is None:
        if default is _UNSET:
            raise ImproperlyConfigured(f"The setting {name} is required: set it in the environment.")
        return str(default)
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    folded = value.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"The setting {name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int) -> int:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"The setting {name}={value!r} is not a whole number.") from None


def env_float(name: str, default: float) -> float:
    value = _raw(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"The setting {name}={value!r} is not a number.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"The setting {name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def engagement_longest_send(*, batch: int, threads: int, rate_max_wait: float, timeout: float) -> float:
    """The longest a claimed outbox message can take before its outcome is known, in seconds.

    A batch's claims are committed together, then its sends share the process's sender threads:
    the last one waits ceil(batch / threads) rounds, each at most the limiter's wait plus the
    provider's timeout. (The worker's processes are prefork: each runs one batch task at a time on its
    own threads, so batches do not queue behind each other's sends.)
    """
    rounds = -(-max(batch, 1) // max(threads, 1))
    return round(rounds * (rate_max_wait + timeout), 1)


def is_loopback_host(host: str) -> bool:
    """localhost or a loopback address (plain transport to it never leaves the machine)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
