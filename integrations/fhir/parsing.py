"""Reading FHIR JSON files without holding a whole 50 MB bundle as Python objects.

A Bundle is scanned once: its top-level elements are decoded, and each `entry` is decoded only to
note its position, resource type, id and fullUrl. The importer decodes entries again, one at a
time, from those positions. NDJSON is read line by line in chunks of bounded size.
"""

from __future__ import annotations

import io
import json
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

_decoder = json.JSONDecoder()
_WS = " \t\n\r"


class FhirInputError(Exception):
    """The file (not one entry) cannot be imported: the message names where and why, never values."""

    def __init__(self, message: str, *, field: str = "", entry: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.entry = entry


@dataclass
class EntryRef:
    index: int
    start: int
    end: int
    resource_type: str = ""
    resource_id: str = ""
    full_url: str = ""


@dataclass
class ScannedBundle:
    text: str
    header: dict[str, Any]
    entries: list[EntryRef] = field(default_factory=list)

    def entry(self, ref: EntryRef) -> Any:
        return json.loads(self.text[ref.start : ref.end])


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _expect(text: str, pos: int, char: str, what: str) -> int:
    pos = _skip(text, pos)
    if pos >= len(text) or text[pos] != char:
        raise FhirInputError(f"Malformed JSON at {_where(text, pos)}: expected {what}.")
    return pos + 1


def _decode(text: str, pos: int, *, entry: int | None = None) -> tuple[Any, int]:
    try:
        return _decoder.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        where = f"entry {entry}: " if entry is not None else ""
        raise FhirInputError(f"{where}Malformed JSON at {_where(text, exc.pos)}: {exc.msg}.", entry=entry) from None
    except RecursionError:
        raise FhirInputError("JSON nested too deeply.", entry=entry) from None


def scan_bundle(text: str) -> ScannedBundle:
    """Check the top level of a Bundle and index its entries (positions, type, id, fullUrl)."""
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
            pos = _expect(text, pos, ":", "':'")
            pos = _skip(text, pos)
            if key == "entry":
                pos = _scan_entries(text, pos, bundle)
            else:
                bundle.header[key], pos = _decode(text, pos)
            pos = _skip(text, pos)
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            pos = _expect(text, pos, "}", "',' or '}'")
            break
    if _skip(text, pos) != len(text):
        raise FhirInputError(f"Malformed JSON at {_where(text, _skip(text, pos))}: extra data after the Bundle.")
    check_bundle_header(bundle.header)
    return bundle


def _scan_entries(text: str, pos: int, bundle: ScannedBundle) -> int:
    pos = _expect(text, pos, "[", "'[' (Bundle.entry is a list)")
    pos = _skip(text, pos)
    if pos < len(text) and text[pos] == "]":
        return pos + 1
    while True:
        index = len(bundle.entries)
        pos = _skip(text, pos)
        start = pos
        value, pos = _decode(text, pos, entry=index)
        ref = EntryRef(index=index, start=start, end=pos)
        if isinstance(value, dict):
            ref.full_url = value.get("fullUrl") if isinstance(value.get("fullUrl"), str) else ""
            resource = value.get("resource")
            if isinstance(resource, dict):
                rtype, rid = resource.get("resourceType"), resource.get("id")
                ref.resource_type = rtype if isinstance(rtype, str) else ""
                ref.resource_id = rid if isinstance(rid, str) else ""
        bundle.entries.append(ref)
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
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


def looks_like_ndjson(text: str) -> bool:
    """One JSON resource per line (at least two non-empty lines, the first a complete object)."""
    stripped = text.lstrip()
    newline = stripped.find("\n")
    if not stripped.startswith("{") or newline < 0 or not stripped[newline:].strip():
        return False
    try:
        first = json.loads(stripped[:newline])
    except ValueError:
        return False
    return isinstance(first, dict) and first.get("resourceType") != "Bundle"


def ndjson_chunks(text: str) -> Iterator[list[tuple[int, Any]]]:
    """Chunks of (line number, decoded resource or the line's JSON error) of bounded size."""
    chunk: list[tuple[int, Any]] = []
    size = 0
    for number, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except (ValueError, RecursionError) as exc:
            value = FhirInputError(f"Malformed JSON on line {number}: {getattr(exc, 'msg', 'nested too deeply')}.")
        chunk.append((number, value))
        size += len(line)
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
