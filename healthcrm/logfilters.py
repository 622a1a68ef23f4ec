"""Logging filters for the project's LOGGING setting."""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import Any

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


class TaskErrorsWithoutValues(logging.Filter):
    """Celery's own line for a failed task, without the exception's message.

    Celery logs "Task <name>[<id>] raised unexpected: <repr of the exception>" with its traceback;
    an exception raised by a service may echo the input it refused (a ValidationError naming a
    value, a driver error quoting a row): PHI. Attached to the `celery.app.trace` logger, this keeps
    the task, its id, its arguments (ids only) and where it failed (the frames: files, lines and
    code, no values), and replaces every exception message, chained ones included, by its type.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if isinstance(record.args, dict):
            context = dict(record.args)
            if "exc" in context:
                error = exc_info[1] if exc_info else None
                context["exc"] = _type_only(error) if error is not None else "(message withheld)"
            if "traceback" in context:
                context["traceback"] = ""
            record.args = context
            if isinstance(getattr(record, "data", None), dict):
                record.data = context
        if exc_info and exc_info[1] is not None:
            record.exc_text = frames_without_values(exc_info[1], exc_info[2])
        record.exc_info = None
        return True


def _type_only(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__} (message withheld: it may hold PHI)"


def frames_without_values(error: BaseException, tb: TracebackType | None) -> str:
    """A traceback's frames and exception types, chained exceptions included, without any message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: Any = error
    current_tb = tb
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.format_list(traceback.extract_tb(current_tb or current.__traceback__))
        parts.insert(0, "Traceback (most recent call last):\n" + "".join(frames) + _type_only(current))
        chained = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        current, current_tb = chained, None
    return "\n\nThe above exception led to the following one:\n\n".join(parts)
