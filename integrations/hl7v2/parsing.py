"""Reading HL7 v2 messages and writing ACKs: header checks, field access, errors that name fields.

Parsing is python-hl7's (`hl7.parse`); what it does not check (the field separator and encoding
characters, a header at all, a control id) is checked here first, so a malformed message gets a
refusal naming the field instead of an exception. Errors carry the HL7 field (`PID-7`) and our own
reason, never a value from the message.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

import hl7

# HL7 table 0357 (message error condition codes) we use.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY_IDENTIFIER = "205"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"
SEGMENT_SEQUENCE_ERROR = "100"
NOT_AUTHORIZED = "207"

_CODE_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

# A field or component separator must be printable punctuation: a letter, digit, space or control
# character as a separator is a message read with the wrong framing or a binary stream.
_SEPARATOR = re.compile(r"[!-/:-@\[-`{-~]")
_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
ACK_SEPARATORS = "|^~\\&"
# Control characters other than the segment terminator (and tab): binary noise, or a frame inside a frame.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Hl7Error(Exception):
    """A message that cannot be applied (`refuse=False`: AE) or is refused (`refuse=True`: AR).

    `field` is the HL7 position (`PID-7`, `SCH-2`, `MSH-9`); `reason` our words, never a value.
    """

    def __init__(self, field: str, reason: str, *, code: str = DATA_TYPE_ERROR, refuse: bool = False) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code
        self.refuse = refuse


@dataclass(frozen=True)
class Header:
    """MSH, as far as routing, idempotency and the ACK need it."""

    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    security: str = ""
    message_code: str = ""
    trigger_event: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger_event}"[:16]


def decode(raw: bytes) -> str:
    """Bytes to text: UTF-8, else ISO 8859-1 (HL7's traditional default); CR/LF line ends become CR."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def _unescape(value: str, separators: str) -> str:
    if "\\" not in value:
        return value
    field, component, repetition, escape, sub = (separators[i] for i in range(5))
    out = value
    for code, char in (("F", field), ("S", component), ("R", repetition), ("T", sub)):
        out = out.replace(f"{escape}{code}{escape}", char)
    return out.replace(f"{escape}E{escape}", escape)


def read_header(text: str) -> Header:
    """The MSH of a message; Hl7Error (refuse) when there is none or its separators are wrong."""
    if not text.startswith("MSH"):
        raise Hl7Error(
            "MSH", "the message does not start with an MSH segment", code=SEGMENT_SEQUENCE_ERROR, refuse=True
        )
    if len(text) < 8:
        raise Hl7Error("MSH-2", "the header is truncated", code=REQUIRED_FIELD_MISSING, refuse=True)
    field_sep = text[3]
    encoding = text[4:8]
    if not _SEPARATOR.fullmatch(field_sep):
        raise Hl7Error("MSH-1", "the field separator is not a punctuation character", refuse=True)
    if len(set(encoding)) != 4 or any(not _SEPARATOR.fullmatch(c) for c in encoding) or field_sep in encoding:
        raise Hl7Error("MSH-2", "the encoding characters are not four distinct separators", refuse=True)
    if _BINARY.search(text):
        raise Hl7Error("MSH", "the message holds binary data", refuse=True)
    separators = field_sep + encoding
    first = text.split("\r", 1)[0]
    # MSH-1 is the separator itself: fields[1] is MSH-2, fields[n] is MSH-(n+1).
    fields = first.split(field_sep)
    component = encoding[0]

    def part(n: int, comp: int = 1) -> str:
        if n - 1 >= len(fields):
            return ""
        value = fields[n - 1].split(encoding[1], 1)[0]
        pieces = value.split(component)
        return _unescape(pieces[comp - 1], separators).strip() if comp - 1 < len(pieces) else ""

    message_type = fields[8] if len(fields) > 8 else ""
    type_parts = message_type.split(component)
    header = Header(
        sending_application=part(3)[:180],
        sending_facility=part(4)[:180],
        receiving_application=part(5)[:180],
        receiving_facility=part(6)[:180],
        security=part(8)[:200],
        message_code=(type_parts[0] if type_parts else "")[:3].upper(),
        trigger_event=(type_parts[1] if len(type_parts) > 1 else "")[:3].upper(),
        control_id=part(10)[:199],
        processing_id=part(11)[:3],
        version=part(12)[:10],
    )
    return header


class Message:
    """A parsed message with forgiving accessors: a field that is not there is "" (never IndexError)."""

    def __init__(self, text: str) -> None:
        for line in text.split("\r"):
            if line and not _SEGMENT_NAME.fullmatch(line[:3]):
                raise Hl7Error("MSH", "a segment does not start with a segment name", code=SEGMENT_SEQUENCE_ERROR)
        try:
            self._message = hl7.parse(text)
        except Exception as exc:  # python-hl7 raises plain errors for input it cannot split
            raise Hl7Error("MSH", "the message could not be parsed", refuse=True) from exc
        self._names = {str(segment[0]) for segment in self._message}

    def has(self, segment: str) -> bool:
        return segment in self._names

    def count(self, segment: str) -> int:
        return sum(1 for s in self._message if str(s[0]) == segment)

    def get(self, segment: str, field: int, rep: int = 1, comp: int = 1, sub: int = 1, *, index: int = 1) -> str:
        """The value at SEG[index]-field.rep.comp.sub, unescaped and stripped; "" when absent."""
        if segment not in self._names:
            return ""
        key = f"{segment}{f'[{index}]' if index != 1 else ''}.F{field}.R{rep}.C{comp}.S{sub}"
        try:
            value = self._message[key]
        except (IndexError, KeyError, AttributeError, TypeError, ValueError):
            return ""
        return str(value).strip() if value is not None else ""

    def repetitions(self, segment: str, field: int, *, index: int = 1, most: int = 20) -> range:
        """The repetition numbers (1-based) a field has (at most `most`)."""
        if segment not in self._names:
            return range(1, 1)
        count = 0
        for rep in itertools.count(1):
            if rep > most:
                break
            key = f"{segment}{f'[{index}]' if index != 1 else ''}.F{field}.R{rep}"
            try:
                self._message[key]
            except (IndexError, KeyError, AttributeError, TypeError, ValueError):
                break
            count = rep
        return range(1, count + 1)


_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?")


def parse_date(value: str, field: str) -> date:
    """An HL7 DT/DTM as a date (YYYYMMDD, any time part ignored); Hl7Error naming `field` otherwise."""
    match = _TS.fullmatch(value.strip())
    if not match or not match.group(2) or not match.group(3):
        raise Hl7Error(field, "not a date (YYYYMMDD)")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise Hl7Error(field, "not a calendar date") from None


def parse_datetime(value: str, field: str, zone: ZoneInfo) -> datetime:
    """An HL7 DTM (YYYYMMDDHHMM[SS][+ZZZZ]) as an aware datetime; no offset: the clinic's zone."""
    match = _TS.fullmatch(value.strip())
    if not match or not match.group(4):
        raise Hl7Error(field, "not a date and time (YYYYMMDDHHMM)")
    year, month, day, hour, minute, second = (int(g or 0) for g in match.groups()[:6])
    try:
        if match.group(7):
            sign = 1 if match.group(7)[0] == "+" else -1
            offset = timedelta(hours=int(match.group(7)[1:3]), minutes=int(match.group(7)[3:5]))
            moment = datetime(year, month, day, hour, minute, second, tzinfo=dt_timezone(sign * offset))
        else:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        raise Hl7Error(field, "not a calendar date and time") from None
    return moment


def _ack_text(value: str) -> str:
    """A value for our ACK: no separators of ours, no control characters, bounded."""
    return re.sub(r"[|^~\\&\r\n\x00-\x1f]", " ", value)[:199]


_counter = itertools.count(1)


def build_ack(
    header: Header | None,
    code: str,
    *,
    now: datetime,
    error: Hl7Error | None = None,
    warnings: list[tuple[str, str]] | None = None,
) -> str:
    """An ACK (v2.5.1) for `header`'s message: MSA with `code`, an ERR per error or warning.

    ERR-2 locates the field (segment^sequence^field), ERR-3 is the table 0357 code, ERR-4 the
    severity (E or W), ERR-8 says the field and why in words. Values never appear.
    """
    h = header or Header()
    stamp = now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    control = f"ACK{now.strftime('%Y%m%d%H%M%S')}{next(_counter) % 100000:05d}"
    trigger = h.trigger_event or ""
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                "HEALTHCRM",
                _ack_text(h.receiving_facility),
                _ack_text(h.sending_application),
                _ack_text(h.sending_facility),
                stamp,
                "",
                f"ACK^{_ack_text(trigger)}^ACK" if trigger else "ACK",
                control,
                _ack_text(h.processing_id) or "P",
                "2.5.1",
            ]
        ),
        f"MSA|{code}|{_ack_text(h.control_id)}",
    ]
    problems: list[tuple[str, str, str, str]] = []
    if error is not None:
        problems.append((error.field, error.reason, error.code, "E"))
    for field, reason in warnings or []:
        problems.append((field, reason, DATA_TYPE_ERROR, "W"))
    for field, reason, err_code, severity in problems:
        segment, _, position = field.partition("-")
        segment = re.sub(r"[^A-Z0-9]", "", segment)[:3]
        location = f"{segment}^1^{position}" if position.isdigit() else segment
        text = _CODE_TEXT.get(err_code, "")
        segments.append(f"ERR||{location}|{err_code}^{text}^HL70357|{severity}||||{_ack_text(f'{field}: {reason}')}")
    return "\r".join(segments) + "\r"


def ack_code(ack: str) -> str:
    """The MSA-1 of an ACK we wrote (tests, the bench)."""
    for line in ack.split("\r"):
        if line.startswith("MSA|"):
            return line.split("|")[1]
    return ""


def ack_errors(ack: str) -> list[dict[str, Any]]:
    """The ERR segments of an ACK we wrote, as {field_text, code, severity} (tests, the bench)."""
    errors = []
    for line in ack.split("\r"):
        if line.startswith("ERR|"):
            parts = line.split("|")
            errors.append({"code": parts[3].split("^")[0], "severity": parts[4], "text": parts[8]})
    return errors
