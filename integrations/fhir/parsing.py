"""Reading FHIR JSON files without holding a whole 50 MB bundle as Python objects.

A Bundle is scanned once: its top-level elements are decoded, and each `entry` is decoded only to
note its position, resource type, id and fullUrl. The importer decodes entries again, one at a
time, from those positions. NDJSON is read line by line in chunks of bounded size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

BUNDLE_TYPES = {"transaction", "batch", "collection", "searchset"}
# Top-level Bundle elements of FHIR R4; anything else (R5's `issues`, STU3 leftovers) is refused.
R4_BUNDLE_ELEMENTS = {
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "identifier",
    "type",
    "timestamp",
    "total",
    "link",
    "entry",
    "signature",
}
NDJSON_CHUNK_LINES = 2000
NDJSON_CHUNK_BYTES = 8 * 1024 * 1024
# The first window decoded for an entry: Synthea-sized entries (about 1 KB) fit; a bigger entry is
# decoded again from a window twice as large, never holding more than the limits allow.
FIRST_WINDOW = 2048

_decoder = json.JSONDecoder()
_WS = " \t\n\r"
_WS_RE = re.compile(r"[ \t\n\r]*")
_NON_WS_RE = re.compile(r"[^ \t\n\r]")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BUNDLE_START_RE = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"resourceType"[ \t\n\r]*:[ \t\n\r]*"Bundle"')


@dataclass(frozen=True)
class Limits:
    """What one file may hold (settings FHIR_IMPORT_MAX_*): a worker's memory and time stay bounded."""

    bundle_entries: int = 100_000
    ndjson_lines: int = 200_000
    unit_resources: int = 100_000
    depth: int = 64
    entry_bytes: int = 8 * 1024 * 1024
    entry_values: int = 20_000
    number_digits: int = 40

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        names = {
            "bundle_entries": "FHIR_IMPORT_MAX_BUNDLE_ENTRIES",
            "ndjson_lines": "FHIR_IMPORT_MAX_NDJSON_LINES",
            "unit_resources": "FHIR_IMPORT_MAX_UNIT_RESOURCES",
            "depth": "FHIR_IMPORT_MAX_DEPTH",
            "entry_bytes": "FHIR_IMPORT_MAX_ENTRY_BYTES",
            "entry_values": "FHIR_IMPORT_MAX_ENTRY_VALUES",
            "number_digits": "FHIR_IMPORT_MAX_NUMBER_DIGITS",
        }
        defaults = cls()
        if not settings.configured:  # scripts that read files without Django: the defaults
            return defaults
        return cls(**{attr: int(getattr(settings, name, getattr(defaults, attr))) for attr, name in names.items()})


def limits() -> Limits:
    return Limits.from_settings()


class FhirInputError(Exception):
    """The file (not one entry) cannot be imported: the message names where and why, never values."""

    def __init__(self, message: str, *, field: str = "", entry: int | None = None, resource_type: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.entry = entry
        self.resource_type = resource_type


@dataclass(slots=True)
class EntryRef:
    index: int
    start: int
    end: int
    resource_type: str = ""
    resource_id: str = ""
    full_url: str = ""
    # A value we cannot read in this entry (a number beyond the limits): the entry fails, not the file.
    problem: FhirInputError | None = None


@dataclass
class ScannedBundle:
    text: str
    header: dict[str, Any]
    entries: list[EntryRef] = field(default_factory=list)

    def entry(self, ref: EntryRef) -> Any:
        if ref.problem is not None:
            raise ref.problem
        return json.loads(self.text[ref.start : ref.end])

    def decoded(self) -> Iterator[tuple[int, Any]]:
        """(index, decoded entry), or (index, FhirInputError) for an entry that cannot be read."""
        for ref in self.entries:
            yield ref.index, (ref.problem if ref.problem is not None else json.loads(self.text[ref.start : ref.end]))


@dataclass(slots=True)
class BadNumber:
    """Stands in for a number we refuse to convert (too many digits, NaN, out of range)."""

    reason: str


class _Reader:
    """Decodes one entry (or NDJSON line, or top-level element) at a time, within the limits."""

    def __init__(self, text: str, limits: Limits) -> None:
        self.text = text
        self.limits = limits
        self.bad_numbers = 0
        self.decoder = json.JSONDecoder(parse_int=self._int, parse_float=self._float, parse_constant=self._constant)

    # Numbers: Python refuses ints of more than 4300 digits with a ValueError that would end the
    # whole job; we refuse long numbers ourselves, as a failure of the element holding them.
    def _too_long(self, literal: str) -> BadNumber | None:
        if len(literal) <= self.limits.number_digits:
            return None
        digits = sum(c.isdigit() for c in literal)
        if digits <= self.limits.number_digits:
            return None
        self.bad_numbers += 1
        return BadNumber(
            f"a number of {digits} digits: at most {self.limits.number_digits} (FHIR_IMPORT_MAX_NUMBER_DIGITS)"
        )

    def _int(self, literal: str) -> Any:
        return self._too_long(literal) or int(literal)

    def _float(self, literal: str) -> Any:
        bad = self._too_long(literal)
        if bad is not None:
            return bad
        value = float(literal)
        if not math.isfinite(value):
            self.bad_numbers += 1
            return BadNumber("a number out of range")
        return value

    def _constant(self, literal: str) -> Any:
        self.bad_numbers += 1
        return BadNumber(f"{literal} is not a JSON number")

    # Counting without decoding: commas and opening brackets outside strings (about one per value).
    def values_in(self, start: int, end: int) -> int:
        text = self.text
        fast = text.count(",", start, end) + text.count("{", start, end) + text.count("[", start, end)
        if fast <= self.limits.entry_values:
            return fast
        inside = 0
        for match in _STRING_RE.finditer(text, start, end):
            string = match.group()
            inside += string.count(",") + string.count("{") + string.count("[")
        return fast - inside

    def _values_error(self, what: str, entry: int | None) -> FhirInputError:
        return FhirInputError(
            f"{what} holds more than {self.limits.entry_values:,} JSON values (limit FHIR_IMPORT_MAX_ENTRY_VALUES).",
            entry=entry,
        )

    def _bytes_error(self, what: str, entry: int | None) -> FhirInputError:
        return FhirInputError(
            f"{what} is larger than {self.limits.entry_bytes:,} bytes (limit FHIR_IMPORT_MAX_ENTRY_BYTES).",
            entry=entry,
        )

    def _depth_error(self, what: str, entry: int | None) -> FhirInputError:
        return FhirInputError(
            f"{what} is nested deeper than {self.limits.depth} levels (limit FHIR_IMPORT_MAX_DEPTH).", entry=entry
        )

    def decode(
        self, start: int, *, entry: int | None = None, kind: str = "entry", label: str = "", end: int | None = None
    ) -> tuple[Any, int]:
        """The JSON value at `start` and its end, after checking its size, values and depth.

        The value is decoded from a window of the text that never holds more than the limits allow
        beyond what was already checked, so a hostile entry is refused before millions of objects
        exist. `end`: the value fills text[start:end] (an NDJSON line), checked before decoding.
        Errors name `label`, or "<kind> <entry>".
        """
        text, limit = self.text, self.limits
        n = len(text) if end is None else end
        hard_stop = min(n, start + limit.entry_bytes)
        if end is not None:
            if end - start > limit.entry_bytes:
                raise self._bytes_error(label or f"{kind} {entry}", entry)
            if self.values_in(start, end) > limit.entry_values:
                raise self._values_error(label or f"{kind} {entry}", entry)
            stop = end
        else:
            stop = min(hard_stop, start + FIRST_WINDOW)
        scan = self.decoder.scan_once
        while True:
            self.bad_numbers = 0
            window = text[start:stop]
            try:
                try:
                    value, used = scan(window, 0)
                except StopIteration as exc:
                    raise json.JSONDecodeError("Expecting value", window, exc.value) from None
                if end is not None and _skip(window, used) != len(window):
                    raise json.JSONDecodeError("Extra data", window, _skip(window, used))
            except json.JSONDecodeError as exc:
                truncated = stop < n and (exc.msg.startswith("Unterminated string") or exc.pos >= len(window) - 16)
                if not truncated:
                    where = f"{label or f'{kind} {entry}'}: " if entry is not None else ""
                    raise FhirInputError(
                        f"{where}Malformed JSON at {_where(text, start + exc.pos)}: {exc.msg}.", entry=entry
                    ) from None
            except RecursionError:
                raise self._depth_error(label or f"{kind} {entry}", entry) from None
            else:
                brackets = window.count("{", 0, used) + window.count("[", 0, used)
                if (
                    brackets + window.count(",", 0, used) > limit.entry_values
                    and self.values_in(start, start + used) > limit.entry_values
                ):
                    raise self._values_error(label or f"{kind} {entry}", entry)
                if brackets > limit.depth and _depth(value, limit.depth) > limit.depth:
                    raise self._depth_error(label or f"{kind} {entry}", entry)
                return value, start + used
            # The value runs past `stop`: all of [start, stop) belongs to it.
            if stop >= hard_stop:
                raise self._bytes_error(label or f"{kind} {entry}", entry)
            if self.values_in(start, stop) > limit.entry_values:
                raise self._values_error(label or f"{kind} {entry}", entry)
            stop = _stop_within(text, stop, min(hard_stop, start + 2 * (stop - start)), limit.entry_values)


def _stop_within(text: str, start: int, stop: int, most: int) -> int:
    """The largest end <= stop such that [start, end) holds at most `most` commas and brackets."""

    def count(end: int) -> int:
        return text.count(",", start, end) + text.count("{", start, end) + text.count("[", start, end)

    if count(stop) <= most:
        return stop
    low, high = start + 1, stop
    while low < high:
        middle = (low + high + 1) // 2
        if count(middle) <= most:
            low = middle
        else:
            high = middle - 1
    return max(low, start + 1)


def _depth(value: Any, most: int) -> int:
    """Nesting depth of a decoded value (stops counting past `most`)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            if level > deepest:
                deepest = level
                if deepest > most:
                    return deepest
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _bad_number(value: Any) -> tuple[list[str | int], BadNumber] | None:
    """Path to the first BadNumber inside a decoded value."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, BadNumber):
            return path, node
        if isinstance(node, dict):
            stack.extend((child, [*path, key]) for key, child in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((child, [*path, i]) for i, child in reversed(list(enumerate(node))))
    return None


def _fhir_path(root: str, path: list[str | int]) -> str:
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _number_problem(value: Any, index: int, *, in_entry: bool) -> FhirInputError | None:
    """The entry (or NDJSON resource) fails, naming the element that holds the number."""
    found = _bad_number(value)
    if found is None:
        return None
    path, bad = found
    resource = value.get("resource") if in_entry and isinstance(value, dict) else value
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    rtype = rtype if isinstance(rtype, str) and rtype.isalnum() and len(rtype) <= 64 else ""
    if in_entry and path[:1] == ["resource"]:
        path = path[1:]
    elif in_entry:
        rtype = ""
    root = rtype or ("Bundle.entry" if in_entry else "(resource)")
    return FhirInputError(bad.reason, field=_fhir_path(root, path), entry=index, resource_type=rtype)


def _skip(text: str, pos: int) -> int:
    if pos >= len(text) or text[pos] not in _WS:
        return pos
    match = _WS_RE.match(text, pos)
    return match.end() if match else pos


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _expect(text: str, pos: int, char: str, what: str) -> int:
    pos = _skip(text, pos)
    if pos >= len(text) or text[pos] != char:
        raise FhirInputError(f"Malformed JSON at {_where(text, pos)}: expected {what}.")
    return pos + 1


def scan_bundle(text: str, limits: Limits | None = None) -> ScannedBundle:
    """Check the top level of a Bundle and index its entries (positions, type, id, fullUrl).

    Every limit is checked while scanning, before anything is written: a Bundle beyond one is
    refused as a whole with a message naming the limit.
    """
    reader = _Reader(text, limits or Limits.from_settings())
    bundle = ScannedBundle(text=text, header={})
    pos = _expect(text, 0, "{", "a JSON object (a FHIR Bundle)")
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "}":
        pos += 1
    else:
        while True:
            pos = _expect(text, pos, '"', "an element name")
            try:
                key, pos = json.decoder.scanstring(text, pos)
            except json.JSONDecodeError as exc:
                raise FhirInputError(f"Malformed JSON at {_where(text, exc.pos)}: {exc.msg}.") from None
            _check_element(bundle.header, key)
            pos = _expect(text, pos, ":", "':'")
            pos = _skip(text, pos)
            if key == "entry":
                pos = _scan_entries(reader, pos, bundle)
                bundle.header.setdefault("entry", None)
            else:
                value, pos = reader.decode(pos, label=f"Bundle.{key}")
                found = _bad_number(value) if reader.bad_numbers else None
                if found is not None:
                    raise FhirInputError(found[1].reason, field=_fhir_path(f"Bundle.{key}", found[0]))
                bundle.header[key] = value
            pos = _skip(text, pos)
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            pos = _expect(text, pos, "}", "',' or '}'")
            break
    if _skip(text, pos) != len(text):
        raise FhirInputError(f"Malformed JSON at {_where(text, _skip(text, pos))}: extra data after the Bundle.")
    bundle.header.pop("entry", None)
    check_bundle_header(bundle.header)
    return bundle


def _check_element(header: dict[str, Any], key: str) -> None:
    # Refused as soon as its name is read: a file of millions of made-up elements is not decoded.
    if key in header:
        raise FhirInputError(f"Bundle.{key} appears twice.", field=f"Bundle.{key}")
    if key not in R4_BUNDLE_ELEMENTS:
        if "resourceType" in header and header["resourceType"] != "Bundle":
            check_bundle_header(header)
        raise FhirInputError(
            f"Bundle.{key} is not an element of FHIR R4 Bundle: is this another FHIR version?", field=f"Bundle.{key}"
        )


def _scan_entries(reader: _Reader, pos: int, bundle: ScannedBundle) -> int:
    text, most = reader.text, reader.limits.bundle_entries
    pos = _expect(text, pos, "[", "'[' (Bundle.entry is a list)")
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "]":
        return pos + 1
    entries = bundle.entries
    n = len(text)
    while True:
        index = len(entries)
        if index >= most:
            raise FhirInputError(
                f"The Bundle holds more than {most:,} entries (limit FHIR_IMPORT_MAX_BUNDLE_ENTRIES).",
                field="Bundle.entry",
                entry=index,
            )
        pos = _skip(text, pos)
        start = pos
        value, pos = reader.decode(pos, entry=index)
        ref = EntryRef(index=index, start=start, end=pos)
        if isinstance(value, dict):
            ref.full_url = value.get("fullUrl") if isinstance(value.get("fullUrl"), str) else ""
            resource = value.get("resource")
            if isinstance(resource, dict):
                rtype, rid = resource.get("resourceType"), resource.get("id")
                ref.resource_type = rtype if isinstance(rtype, str) else ""
                ref.resource_id = rid if isinstance(rid, str) else ""
        if reader.bad_numbers:
            ref.problem = _number_problem(value, index, in_entry=True)
        entries.append(ref)
        pos = _skip(text, pos)
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        return _expect(text, pos, "]", "',' or ']'")


def check_bundle_header(header: dict[str, Any]) -> None:
    if header.get("resourceType") != "Bundle":
        raise FhirInputError("Expected a FHIR Bundle (resourceType 'Bundle').", field="Bundle.resourceType")
    for key in header:
        if key not in R4_BUNDLE_ELEMENTS:
            raise FhirInputError(
                f"Bundle.{key} is not an element of FHIR R4 Bundle: is this another FHIR version?",
                field=f"Bundle.{key}",
            )
    if not isinstance(header.get("type"), str) or header["type"] not in BUNDLE_TYPES:
        raise FhirInputError("Bundle.type must be transaction, batch, collection or searchset.", field="Bundle.type")


def looks_like_ndjson(text: str, limits: Limits | None = None) -> bool:
    """One JSON resource per line (at least two non-empty lines, the first a complete object)."""
    start = _skip(text, 0)
    newline = text.find("\n", start)
    if not text.startswith("{", start) or newline < 0 or _NON_WS_RE.search(text, newline) is None:
        return False
    limits = limits or Limits.from_settings()
    if newline - start > limits.entry_bytes:
        # Too long a first line to decode: NDJSON unless it opens a Bundle (its reading will say why).
        return _BUNDLE_START_RE.match(text, start) is None
    try:
        first, _ = _Reader(text, limits).decode(start, label="line 1", end=newline)
    except FhirInputError:
        return _BUNDLE_START_RE.match(text, start) is None
    return isinstance(first, dict) and first.get("resourceType") != "Bundle"


def _lines(text: str) -> Iterator[tuple[int, int, int]]:
    """(line number, start, end) of each non-blank line, without copying the text."""
    pos, n, number = 0, len(text), 0
    while pos < n:
        newline = text.find("\n", pos)
        end = n if newline < 0 else newline
        number += 1
        if _NON_WS_RE.search(text, pos, end) is not None:
            yield number, pos, end
        pos = end + 1


def check_ndjson(text: str, limits: Limits | None = None) -> None:
    """Refuse the whole file before any unit is written when it breaks a file limit.

    Lines are counted and measured without decoding; a line is decoded here only when it has
    more brackets than the depth limit (to measure its depth), never more values than allowed.
    """
    limits = limits or Limits.from_settings()
    reader = _Reader(text, limits)
    for count, (number, start, end) in enumerate(_lines(text), start=1):
        if count > limits.ndjson_lines:
            raise FhirInputError(
                f"The file holds more than {limits.ndjson_lines:,} resources (lines) "
                "(limit FHIR_IMPORT_MAX_NDJSON_LINES).",
                field="(file)",
                entry=number,
            )
        what = f"line {number}"
        if end - start > limits.entry_bytes:
            raise reader._bytes_error(what, number)
        if reader.values_in(start, end) > limits.entry_values:
            raise reader._values_error(what, number)
        if text.count("{", start, end) + text.count("[", start, end) > limits.depth:
            try:
                reader.decode(start, entry=number, kind="line", end=end)
            except FhirInputError as exc:
                if "limit FHIR_IMPORT_MAX" in str(exc):
                    raise
                # Malformed lines fail their own unit, like before.


def ndjson_chunks(text: str, limits: Limits | None = None) -> Iterator[list[tuple[int, Any]]]:
    """Chunks of (line number, decoded resource or the line's error) of bounded size.

    The file's limits are checked first (check_ndjson): nothing is yielded from a refused file.
    """
    limits = limits or Limits.from_settings()
    check_ndjson(text, limits)
    reader = _Reader(text, limits)
    chunk: list[tuple[int, Any]] = []
    size = 0
    for number, start, end in _lines(text):
        value: Any
        try:
            value, _ = reader.decode(start, entry=number, kind="line", end=end)
        except FhirInputError as exc:
            exc.field = exc.field or "(line)"
            value = exc
        else:
            if reader.bad_numbers:
                value = _number_problem(value, number, in_entry=False) or value
        chunk.append((number, value))
        size += end - start
        if len(chunk) >= NDJSON_CHUNK_LINES or size >= NDJSON_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def decode_text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FhirInputError(f"The file is not UTF-8 text (byte {exc.start}).") from None
