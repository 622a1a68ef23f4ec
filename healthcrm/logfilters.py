"""Logging filters for the project's LOGGING setting."""

from __future__ import annotations

import logging


class ClientErrorsOnOneLine(logging.Filter):
    """Django logs every 403 (and 400) with the exception's traceback: noise that hides real errors.

    Attached to the `django.request` logger: a record of a response below 500 keeps its one line
    ("Forbidden (Permission denied): /patients/12/") and loses the traceback; 5xx keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
