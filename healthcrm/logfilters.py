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


class QueryStringsOut(logging.Filter):
    """The development server's request line without its query string.

    Query strings may carry search terms (admin autocomplete's `term=` is sent by Django's own
    JavaScript as a GET); the path and status are enough to read a request log. Attached to the
    `django.server` logger; gunicorn's access log format does the same (docker-compose.yml).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
            record.args = (strip_query_string(record.args[0]), *record.args[1:])
        return True


def strip_query_string(request_line: str) -> str:
    """'GET /admin/?q=x HTTP/1.1' -> 'GET /admin/?… HTTP/1.1' (a marker says there was one)."""
    parts = request_line.split(" ")
    if len(parts) >= 2 and "?" in parts[1]:
        parts[1] = parts[1].split("?", 1)[0] + "?…"
    return " ".join(parts)
