"""Logging filters for the project's LOGGING setting."""

from __future__ import annotations

import logging
import re

# Paths that carry a bearer secret: a patient link's signed token works for whoever holds it until
# it expires, so a log line must not hold it.
_SECRET_PATHS = re.compile(r"(/engagement/l/)[^/\s]+")


def redact_path(text: str) -> str:
    return _SECRET_PATHS.sub(r"\1[token]", text)


class ClientErrorsOnOneLine(logging.Filter):
    """Django logs every 403 (and 400, 404, 410) with the exception's traceback: noise that hides
    real errors.

    Attached to the `django.request` logger: a record of a response below 500 keeps its one line
    ("Forbidden (Permission denied): /patients/12/") and loses the traceback; 5xx keep theirs.
    Patient-link tokens in the logged path are replaced by `[token]` either way.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True
