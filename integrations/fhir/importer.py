"""Importing FHIR R4 data: validate, map, resolve references, upsert; one transaction per unit.

A unit is a Bundle, or a chunk of an NDJSON file. It is imported whole or not at all: entries are
first validated (fhir.resources R4B models, then our own checks of coded values) and their
references resolved, and only when every entry passed are rows written, in one transaction; an
error while writing rolls the unit back. References are resolved inside the unit (urn:uuid
fullUrls, relative and absolute references, conditional `Type?identifier=system|value`) or to
resources imported earlier from the same source system (FhirResourceLink), never fetched.

Upserts: every imported resource has a FhirResourceLink (source system, type, id) with a hash of
its content; a resource seen again with the same hash is left alone, a changed one updates its
row. A patient not linked yet is matched by identifier (the MRN, then other identifiers), never by
name; a practitioner by NPI; a location by name.

Patients' records are written through patients' public services (patient_create/update,
practitioner_import_upsert, appointment_import_upsert, clinical_row_update, and for the many
clinical rows the bulk writer clinical_rows_create, which validates and audits them); the
importer keeps only its own FhirResourceLink rows and the organization's locations.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError as PydanticValidationError

from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from integrations.fhir import mapping
from integrations.fhir.mapping import KEPT_TYPES, MAPPERS, REFERENCE_ONLY, TIERS, Mapped, MappingError, Skip
from integrations.fhir.parsing import (
    FhirInputError,
    Limits,
    decode_text,
    looks_like_ndjson,
    ndjson_chunks,
    scan_bundle,
)
from integrations.models import FhirResourceLink
from patients.models import Appointment, Patient, PatientIdentifier, Practitioner
from patients.scheduling.selectors import practitioner_get_by_npi
from patients.scheduling.services import appointment_import_upsert, practitioner_import_upsert
from patients.selectors import patient_match
from patients.services import (
    ClinicalRowInvalid,
    clinical_row_update,
    clinical_rows_create,
    patient_create,
    patient_identifier_add,
    patient_update,
)

OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")
MAX_FAILURES_KEPT = 200
MAX_PATIENT_IDS_KEPT = 50
FLUSH_EVERY = 2000  # rows per bulk write inside a unit's transaction


@dataclass
class Failure:
    entry: int
    resource_type: str
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "resource_type": self.resource_type, "field": self.field, "reason": self.reason}


@dataclass
class ImportReport:
    """Counts per resource type and outcome, and each failure's entry, element and reason (no values).

    Failures are errors: the resource cannot be represented, and its unit was rolled back.
    Warnings are data-quality findings (an identifier that fails its format check, a missing
    optional reference): the resource was imported without the questionable element.
    """

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    failure_total: int = 0
    warnings: list[Failure] = field(default_factory=list)
    warning_total: int = 0
    units: int = 0
    units_failed: int = 0
    patient_ids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure_total == 0

    def warn(self, warning: Failure) -> None:
        self.warning_total += 1
        if len(self.warnings) < MAX_FAILURES_KEPT:
            self.warnings.append(warning)

    def add(self, resource_type: str, outcome: str, n: int = 1) -> None:
        self.counts[resource_type or "(unknown)"][outcome] += n

    def fail(self, failure: Failure) -> None:
        self.failure_total += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(failure)

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": {t: {o: c[o] for o in OUTCOMES} for t, c in sorted(self.counts.items())},
            "failures": [f.as_dict() for f in self.failures],
            "failure_total": self.failure_total,
            "warnings": [w.as_dict() for w in self.warnings],
            "warning_total": self.warning_total,
            "units": self.units,
            "units_failed": self.units_failed,
            "patient_ids": self.patient_ids,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        report = cls()
        for rtype, counts in (data.get("counts") or {}).items():
            report.counts[rtype] = Counter(counts)
        report.failures = [Failure(**f) for f in data.get("failures") or []]
        report.failure_total = data.get("failure_total", len(report.failures))
        report.warnings = [Failure(**w) for w in data.get("warnings") or []]
        report.warning_total = data.get("warning_total", len(report.warnings))
        report.units = data.get("units", 0)
        report.units_failed = data.get("units_failed", 0)
        report.patient_ids = list(data.get("patient_ids") or [])
        return report

    def rows(self) -> list[tuple[str, dict[str, int]]]:
        return [(t, {o: c[o] for o in OUTCOMES}) for t, c in sorted(self.counts.items())]

    def as_text(self) -> str:
        lines = [f"{'resource type':<22}" + "".join(f"{o:>11}" for o in OUTCOMES)]
        for rtype, counts in self.rows():
            lines.append(f"{rtype:<22}" + "".join(f"{counts[o]:>11}" for o in OUTCOMES))
        lines.append(f"units: {self.units}, failed (rolled back, 0 rows written): {self.units_failed}")
        for failure in self.failures:
            lines.append(f"  entry {failure.entry} ({failure.resource_type or '?'}) {failure.field}: {failure.reason}")
        if self.failure_total > len(self.failures):
            lines.append(f"  ... and {self.failure_total - len(self.failures)} more failures")
        if self.warning_total:
            lines.append(f"warnings (imported without the element): {self.warning_total}")
        for warning in self.warnings:
            lines.append(f"  entry {warning.entry} ({warning.resource_type or '?'}) {warning.field}: {warning.reason}")
        if self.warning_total > len(self.warnings):
            lines.append(f"  ... and {self.warning_total - len(self.warnings)} more warnings")
        return "\n".join(lines)


class UnitFailed(Exception):  # noqa: N818 - control flow inside the importer
    def __init__(self, failures: list[Failure]) -> None:
        super().__init__(f"{len(failures)} failures")
        self.failures = failures


@dataclass
class Item:
    """One entry of a unit, validated and mapped."""

    index: int
    resource_type: str
    resource_id: str
    full_url: str
    content_hash: str
    mapped: Mapped | None
    identifier_keys: list[str] = field(default_factory=list)
    last_updated: str | None = None
    target: tuple[str, str] = ("", "")


def content_hash(resource: dict[str, Any]) -> str:
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _pydantic_failure(index: int, rtype: str, exc: PydanticValidationError) -> Failure:
    error = exc.errors(include_url=False, include_input=False)[0]
    path = rtype
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    reason = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        reason += " in FHIR R4 (is this another FHIR version?)"
    return Failure(index, rtype, path, reason)


def _validation_failure(index: int, rtype: str, exc: ValidationError, paths: dict[str, str]) -> Failure:
    if hasattr(exc, "error_dict"):
        name, errors = next(iter(exc.error_dict.items()))
        message = errors[0].messages[0] if errors else "invalid"
        return Failure(index, rtype, paths.get(name, f"{rtype} ({name})"), message)
    return Failure(index, rtype, rtype, exc.messages[0] if exc.messages else "invalid")


# -- Reading the file ----------------------------------------------------------------------------

ProgressFn = Callable[[int, int], None]


def fhir_import_data(
    data: bytes | str,
    *,
    source_system: str,
    actor: Any = None,
    report: ImportReport | None = None,
    run_unit: Callable[[Callable[[], None]], None] | None = None,
    progress: ProgressFn | None = None,
) -> ImportReport:
    """Import a Bundle or an NDJSON file, unit by unit, into the current organization.

    `run_unit(fn)` runs each unit's work (the task and the command pass one that enters
    `organization_context`, so each unit commits on its own); by default units run in the caller's
    transaction, each in a savepoint. Never raises for bad input: it is reported.
    """
    report = report if report is not None else ImportReport()
    run = run_unit or (lambda fn: fn())
    try:
        text = decode_text(data)
        del data
        if looks_like_ndjson(text):
            # Chunks are decoded one at a time: a 50 MB file never sits in memory as Python objects.
            total = text.count("\n") or 1
            done = 0
            for chunk in ndjson_chunks(text):
                importer = UnitImporter(source_system=source_system, actor=actor, report=report)
                run(lambda chunk=chunk, importer=importer: importer.run_ndjson(chunk))
                done += len(chunk)
                if progress:
                    progress(done, total)
        else:
            bundle = scan_bundle(text)
            if progress:
                progress(0, len(bundle.entries))
            importer = UnitImporter(source_system=source_system, actor=actor, report=report)
            if progress:
                total = len(bundle.entries)
                importer.progress = lambda n: progress(n, total)
            run(lambda: importer.run_bundle(bundle))
            if progress:
                progress(len(bundle.entries), len(bundle.entries))
    except FhirInputError as exc:
        report.units += 1
        report.units_failed += 1
        report.fail(Failure(exc.entry if exc.entry is not None else -1, "Bundle", exc.field or "(file)", str(exc)))
    return report


# -- One unit ------------------------------------------------------------------------------------


class UnitImporter:
    def __init__(self, *, source_system: str, actor: Any = None, report: ImportReport) -> None:
        self.source_system = source_system[:255]
        self.actor = actor if getattr(actor, "is_authenticated", False) else None
        self.report = report
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.patient_ids: list[int] = []
        # Medication resources of this unit (reference-only): code text, code, system.
        self.medications: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.progress: Callable[[int], None] | None = None
        # Data-quality warnings of this unit, reported once its rows are committed.
        self.warnings: list[Failure] = []

    # Entry points --------------------------------------------------------------------------

    def run_bundle(self, bundle: Any) -> None:
        self._run(bundle.decoded(), bundle_type=bundle.header.get("type"))

    def run_ndjson(self, chunk: list[tuple[int, Any]]) -> None:
        def entries() -> Iterable[tuple[int, Any]]:
            for line, value in chunk:
                if isinstance(value, FhirInputError):
                    yield line, value
                else:
                    yield line, {"resource": value}

        self._run(entries(), bundle_type=None)

    def _run(self, entries: Iterable[tuple[int, Any]], bundle_type: str | None) -> None:
        self.report.units += 1
        try:
            items = self._prepare(entries, bundle_type)
            with transaction.atomic():
                self._write(items)
        except UnitFailed as failed:
            self._fail_unit(failed.failures)
            return
        except DatabaseError as exc:  # a constraint we did not foresee: the unit is rolled back
            self._fail_unit([Failure(-1, "", "(database)", f"refused by the database ({type(exc).__name__})")])
            return
        for rtype, counts in self.counts.items():
            for outcome, n in counts.items():
                self.report.add(rtype, outcome, n)
        for warning in self.warnings:
            self.report.warn(warning)
        for pk in self.patient_ids:
            if pk not in self.report.patient_ids and len(self.report.patient_ids) < MAX_PATIENT_IDS_KEPT:
                self.report.patient_ids.append(pk)

    def _fail_unit(self, failures: list[Failure]) -> None:
        self.report.units_failed += 1
        for failure in failures:
            self.report.fail(failure)
            self.report.add(failure.resource_type, "failed")

    # Phase 1: validate and map ---------------------------------------------------------------

    def _prepare(self, entries: Iterable[tuple[int, Any]], bundle_type: str | None) -> list[Item]:
        items: list[Item] = []
        failures: list[Failure] = []
        most = Limits.from_settings().unit_resources
        for count, (index, entry) in enumerate(entries, start=1):
            if self.progress is not None and count % 250 == 0:
                self.progress(count)
            if count > most:
                reason = f"more than {most:,} resources in one unit (limit FHIR_IMPORT_MAX_UNIT_RESOURCES)"
                raise UnitFailed([Failure(index, "", "Bundle.entry", reason)])
            if isinstance(entry, FhirInputError):
                failures.append(Failure(index, entry.resource_type, entry.field or "(line)", str(entry)))
                continue
            item = self._prepare_entry(index, entry, bundle_type, failures)
            if item is not None:
                items.append(item)
        if failures:
            raise UnitFailed(failures)
        return items

    def _prepare_entry(self, index: int, entry: Any, bundle_type: str | None, failures: list[Failure]) -> Item | None:
        if not isinstance(entry, dict):
            failures.append(Failure(index, "", "Bundle.entry", "an entry must be a JSON object"))
            return None
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
            if request.get("method") == "DELETE":
                self.counts[""]["skipped"] += 1
                return None
            failures.append(Failure(index, "", "Bundle.entry.resource", "an entry must hold a resource"))
            return None
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            failures.append(Failure(index, "", "resourceType", "required"))
            return None
        try:
            model_class = get_fhir_model_class(rtype)
        except (KeyError, ValueError, AttributeError, ImportError):
            failures.append(
                Failure(index, rtype[:64] if _plain_name(rtype) else "", "resourceType", "not a FHIR R4 resource type")
            )
            return None
        if rtype not in KEPT_TYPES:
            self.counts[rtype]["skipped"] += 1
            return None
        try:
            model_class.model_validate(resource)
        except PydanticValidationError as exc:
            failures.append(_pydantic_failure(index, rtype, exc))
            return None
        except (ValueError, TypeError, RecursionError):
            failures.append(Failure(index, rtype, rtype, "not a valid resource"))
            return None
        rid = resource.get("id")
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else ""
        if not rid:
            if full_url.startswith("urn:uuid:"):
                rid = full_url[len("urn:uuid:") :]
            else:
                failures.append(Failure(index, rtype, f"{rtype}.id", "required (or a urn:uuid fullUrl)"))
                return None
        if len(str(rid)) > 64:
            failures.append(Failure(index, rtype, f"{rtype}.id", "longer than 64 characters"))
            return None
        mapped: Mapped | None = None
        if rtype not in REFERENCE_ONLY:
            try:
                mapped = MAPPERS[rtype](resource)
            except Skip:
                self.counts[rtype]["skipped"] += 1
                return None
            except MappingError as exc:
                failures.append(Failure(index, rtype, exc.field, exc.reason))
                return None
            except (TypeError, AttributeError, ValueError, KeyError, ArithmeticError):
                # Valid R4 we did not expect: refuse the entry rather than fail the whole import.
                failures.append(Failure(index, rtype, rtype, "could not be mapped to HealthCRM's record"))
                return None
            self.warnings.extend(Failure(index, rtype, path, reason) for path, reason in mapped.warnings)
        keys = [
            f"{i.get('system', '')}|{i.get('value')}"
            for i in resource.get("identifier") or []
            if isinstance(i, dict) and i.get("value")
        ]
        medication = _medication_concept(resource) if rtype == "Medication" else None
        item = Item(
            index=index,
            resource_type=rtype,
            resource_id=str(rid),
            full_url=full_url,
            content_hash=content_hash(resource),
            mapped=mapped,
            identifier_keys=keys,
            last_updated=(resource.get("meta") or {}).get("lastUpdated"),
        )
        if medication is not None:
            self.medications[(rtype, str(rid))] = medication
        return item

    # Phase 2: resolve references and write ----------------------------------------------------

    def _write(self, items: list[Item]) -> None:
        organization = require_current_organization()
        by_url: dict[str, tuple[str, str]] = {}
        in_unit: set[tuple[str, str]] = set()
        by_identifier: dict[tuple[str, str], tuple[str, str]] = {}
        self._by_id: dict[str, tuple[str, str]] = {}
        for item in items:
            key = (item.resource_type, item.resource_id)
            item.target = key
            in_unit.add(key)
            self._by_id.setdefault(item.resource_id, key)
            if item.full_url:
                by_url[item.full_url] = key
            for identifier in item.identifier_keys:
                by_identifier.setdefault((item.resource_type, identifier), key)

        failures: list[Failure] = []
        wanted: dict[str, set[str]] = defaultdict(set)
        for rtype, rid in in_unit:
            wanted[rtype].add(rid)
        # Resolve every reference to a (type, id) key or a known object id.
        resolved_refs: dict[int, dict[str, tuple[str, Any]]] = {}
        for item in items:
            mapped = item.mapped
            if mapped is None:
                continue
            refs = dict(mapped.refs)
            for path, ref in mapped.participants:
                refs[f"participant:{path}"] = (path, ref)
            if mapped.medication_ref:
                refs["medication"] = mapped.medication_ref
            out: dict[str, tuple[str, Any]] = {}
            for name, (path, ref) in refs.items():
                target = self._resolve(ref, by_url, by_identifier)
                if target is None:
                    if name in mapped.optional_refs:
                        reason = "not a reference we can resolve: imported without it"
                        self.warnings.append(Failure(item.index, item.resource_type, path, reason))
                    else:
                        failures.append(Failure(item.index, item.resource_type, path, "not a reference we can resolve"))
                    continue
                out[name] = target
                if target[0] == "key":
                    wanted[target[1][0]].add(target[1][1])
            resolved_refs[item.index] = out
        links = self._links(wanted)
        for item in items:
            item_refs = resolved_refs.get(item.index, {})
            for name, (kind, value) in list(item_refs.items()):
                if kind == "key" and value not in in_unit and value not in links:
                    path = (
                        (item.mapped.refs.get(name) or item.mapped.medication_ref or ("", ""))[0] if item.mapped else ""
                    )
                    if name.startswith("participant:"):
                        path = name.split(":", 1)[1]
                    reason = (
                        f"refers to {'a resource' if value[0] == '?' else value[0]} that is neither in this "
                        "file nor imported before"
                    )
                    if item.mapped is not None and name in item.mapped.optional_refs:
                        # An optional link (the encounter's practitioner, ...): the resource stays.
                        del item_refs[name]
                        self.warnings.append(
                            Failure(item.index, item.resource_type, path, reason + ": imported without it")
                        )
                        continue
                    failures.append(Failure(item.index, item.resource_type, path, reason))
        if failures:
            raise UnitFailed(failures)

        # object ids by (type, id), from earlier imports; filled in as rows are written.
        object_ids: dict[tuple[str, str], int | None] = {k: link.object_id for k, link in links.items()}
        self._organization = organization
        tiers: dict[int, list[Item]] = defaultdict(list)
        for item in items:
            tiers[TIERS[item.resource_type]].append(item)
        for tier in sorted(tiers):
            self._write_tier(tiers[tier], links, object_ids, resolved_refs)

    def _resolve(
        self, ref: str, by_url: dict[str, tuple[str, str]], by_identifier: dict[tuple[str, str], tuple[str, str]]
    ) -> tuple[str, Any] | None:
        """('key', (type, id)) or ('object', (type, pk)) for a reference string; None if malformed."""
        if ref in by_url:
            return ("key", by_url[ref])
        if ref.startswith("urn:uuid:"):
            # No fullUrl (NDJSON, search pages): Synthea-style ids equal the uuid.
            uid = ref[len("urn:uuid:") :]
            return ("key", self._by_id.get(uid, ("?", uid)))
        if ref.startswith("urn:"):
            return None
        if ref.startswith("#"):
            return None  # contained resources are not supported
        if "?" in ref:
            rtype, _, query = ref.partition("?")
            rtype = rtype.rstrip("/").split("/")[-1]
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            identifier = params.get("identifier", "")
            if not identifier:
                return None
            if (rtype, identifier) in by_identifier:
                return ("key", by_identifier[(rtype, identifier)])
            pk = self._find_by_identifier(rtype, identifier)
            return ("object", (rtype, pk)) if pk else ("key", (rtype, "?" + identifier))
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) < 2 or not parts[-1] or not parts[-2]:
            return None
        return ("key", (parts[-2], parts[-1]))

    def _find_by_identifier(self, rtype: str, identifier: str) -> int | None:
        system, _, value = identifier.partition("|")
        if rtype == "Patient":
            patient = patient_match(identifiers=[(system, value)])
            return patient.pk if patient else None
        if rtype == "Practitioner" and system == mapping.NPI_SYSTEM:
            practitioner = practitioner_get_by_npi(npi=value)
            return practitioner.pk if practitioner else None
        return None

    def _links(self, wanted: dict[str, set[str]]) -> dict[tuple[str, str], FhirResourceLink]:
        links: dict[tuple[str, str], FhirResourceLink] = {}
        for rtype, ids in wanted.items():
            ids = {i for i in ids if not i.startswith("?")}
            if not ids:
                continue
            query = FhirResourceLink.objects.filter(source_system=self.source_system, resource_id__in=ids)
            if rtype != "?":  # "?": a urn:uuid reference, whose type is not known
                query = query.filter(resource_type=rtype)
            for link in query:
                links[(rtype if rtype == "?" else link.resource_type, link.resource_id)] = link
        return links

    def _object_id(self, target: tuple[str, Any], object_ids: dict[tuple[str, str], int | None]) -> int | None:
        kind, value = target
        if kind == "object":
            return value[1]
        return object_ids.get(value)

    def _write_tier(
        self,
        items: list[Item],
        links: dict[tuple[str, str], FhirResourceLink],
        object_ids: dict[tuple[str, str], int | None],
        resolved_refs: dict[int, dict[str, tuple[str, Any]]],
    ) -> None:
        new_objects: dict[type[models.Model], list[tuple[Item, models.Model]]] = defaultdict(list)
        new_links: list[FhirResourceLink] = []
        pending = 0
        changed_links: list[FhirResourceLink] = []
        for item in items:
            key = (item.resource_type, item.resource_id)
            link = links.get(key)
            if link is not None and link.content_hash == item.content_hash:
                self.counts[item.resource_type]["unchanged"] += 1
                if item.resource_type == "Patient" and link.object_id:
                    self.patient_ids.append(link.object_id)
                continue
            fields = self._fields(item, resolved_refs.get(item.index, {}), object_ids)
            existing = self._existing(item, link, fields)
            if item.mapped is None:  # reference-only: a link, no row
                obj_id = None
            elif existing is not None:
                self._update(item, existing, fields)
                obj_id = existing.pk
            elif self._one_by_one(item):
                obj_id = self._create_one(item, fields).pk
            else:  # validated by clinical_rows_create when flushed
                new_objects[item.mapped.model].append((item, item.mapped.model(**fields)))
                pending += 1
                obj_id = None
            if obj_id is not None:
                object_ids[key] = obj_id
                if item.resource_type == "Patient":
                    self.patient_ids.append(obj_id)
            outcome = "updated" if (existing is not None or link is not None) else "created"
            self.counts[item.resource_type][outcome] += 1
            if link is not None:
                link.content_hash = item.content_hash
                link.object_id = obj_id if obj_id is not None else link.object_id
                changed_links.append(link)
            elif obj_id is not None or item.mapped is None:
                new_links.append(self._link(item, obj_id))
            if pending >= FLUSH_EVERY:
                self._flush(new_objects, new_links, object_ids)
                pending = 0
        self._flush(new_objects, new_links, object_ids)
        if changed_links:
            FhirResourceLink.objects.bulk_update(changed_links, ["content_hash", "object_id", "updated_at"])

    def _flush(
        self,
        new_objects: dict[type[models.Model], list[tuple[Item, models.Model]]],
        new_links: list[FhirResourceLink],
        object_ids: dict[tuple[str, str], int | None],
    ) -> None:
        # Bulk path for the many clinical rows of a Synthea-sized record: one-row services would
        # cost an INSERT and an audit INSERT each; patients' bulk writer validates every row, writes
        # each model in one multi-row INSERT and its audit entries in bulk, in this transaction.
        for pairs in new_objects.values():
            try:
                objs = clinical_rows_create(rows=[obj for _, obj in pairs], actor=self.actor)
            except ClinicalRowInvalid as refused:
                item = pairs[refused.index][0]
                failure = _validation_failure(item.index, item.resource_type, refused.error, item.mapped.paths)
                raise UnitFailed([failure]) from None
            for (item, _), obj in zip(pairs, objs, strict=True):
                object_ids[(item.resource_type, item.resource_id)] = obj.pk
                new_links.append(self._link(item, obj.pk))
                item.mapped = None  # written: its values are not needed any more (memory)
        FhirResourceLink.objects.bulk_create(new_links, batch_size=2000)
        # Written in batches so that a 50 MB bundle never holds all its rows as model instances.
        new_objects.clear()
        new_links.clear()

    def _link(self, item: Item, obj_id: int | None) -> FhirResourceLink:
        content_type = (
            ContentType.objects.get_for_model(item.mapped.model) if item.mapped and item.mapped.model else None
        )
        return FhirResourceLink(
            source_system=self.source_system,
            resource_type=item.resource_type,
            resource_id=item.resource_id,
            content_type=content_type,
            object_id=obj_id,
            content_hash=item.content_hash,
            last_updated=_when(item.last_updated),
        )

    def _fields(
        self, item: Item, refs: dict[str, tuple[str, Any]], object_ids: dict[tuple[str, str], int | None]
    ) -> dict[str, Any]:
        if item.mapped is None:
            return {}
        fields = dict(item.mapped.fields)
        for name, target in refs.items():
            if name == "medication":
                concept = self.medications.get(target[1]) if target[0] == "key" else None
                if concept and concept[0]:
                    fields["name"] = fields.get("name") or concept[0][:255]
                    fields["code"] = fields.get("code") or concept[1][:32]
                    fields["code_system"] = concept[2] or fields.get("code_system")
                continue
            if name.startswith("participant:"):
                rtype = target[1][0]
                attr = {"Patient": "patient", "Practitioner": "practitioner", "Location": "location"}.get(rtype)
                if attr:
                    fields[f"{attr}_id"] = self._object_id(target, object_ids)
                continue
            fields[f"{name}_id"] = self._object_id(target, object_ids)
        if item.resource_type in ("MedicationRequest", "MedicationStatement") and not fields.get("name"):
            raise UnitFailed(
                [Failure(item.index, item.resource_type, f"{item.resource_type}.medication[x]", "no name")]
            )
        if item.resource_type == "Appointment":
            for attr in ("patient", "practitioner"):
                if not fields.get(f"{attr}_id"):
                    raise UnitFailed(
                        [
                            Failure(
                                item.index,
                                "Appointment",
                                "Appointment.participant",
                                f"a {attr} participant is required",
                            )
                        ]
                    )
        return fields

    def _existing(self, item: Item, link: FhirResourceLink | None, fields: dict[str, Any]) -> models.Model | None:
        model = item.mapped.model if item.mapped else None
        if model is None:
            return None
        if link is not None and link.object_id:
            return model.objects.filter(pk=link.object_id).first()
        if model is Patient:
            return patient_match(identifiers=[("", fields["mrn"]), *item.mapped.identifiers], mrn=fields["mrn"])
        if model is Practitioner and fields.get("npi"):
            return practitioner_get_by_npi(npi=fields["npi"])
        if model is Location:
            return Location.objects.filter(name__iexact=fields["name"]).first()
        return None

    @staticmethod
    def _one_by_one(item: Item) -> bool:
        # Patients, practitioners, locations and appointments are few per file and have unique or
        # exclusion constraints worth checking one by one (double booking, MRN, NPI).
        return TIERS[item.resource_type] == 0 or item.resource_type == "Appointment"

    def _create_one(self, item: Item, fields: dict[str, Any]) -> models.Model:
        model = item.mapped.model
        try:
            if model is Patient:
                patient = patient_create(**fields)
                self._add_identifiers(item, patient)
                return patient
            if model is Practitioner:
                return practitioner_import_upsert(**fields)
            if model is Appointment:
                return appointment_import_upsert(source_system=self.source_system, source_id=item.resource_id, **fields)
            # A location is the organization's (healthcrm), not a patient's: no patients service.
            obj = model(**fields)
            obj.full_clean()
            with transaction.atomic():
                obj.save()
            return obj
        except ValidationError as exc:
            raise UnitFailed([_validation_failure(item.index, item.resource_type, exc, item.mapped.paths)]) from None

    def _update(self, item: Item, obj: models.Model, fields: dict[str, Any]) -> None:
        try:
            if isinstance(obj, Patient):
                patient_update(patient=obj, **fields)
                self._add_identifiers(item, obj)
            elif isinstance(obj, Practitioner):
                practitioner_import_upsert(practitioner=obj, **fields)
            elif isinstance(obj, Appointment):
                # A participant location the resource no longer names stays as it was.
                fields = {"location_id": obj.location_id, **fields}
                appointment_import_upsert(
                    appointment=obj, source_system=obj.source_system, source_id=obj.source_id, **fields
                )
            elif isinstance(obj, Location):
                for name, value in fields.items():
                    setattr(obj, name, value)
                obj.full_clean()
                with transaction.atomic():
                    obj.save()
            else:
                clinical_row_update(row=obj, **fields)
        except ValidationError as exc:
            raise UnitFailed([_validation_failure(item.index, item.resource_type, exc, item.mapped.paths)]) from None

    def _add_identifiers(self, item: Item, patient: Patient) -> None:
        have = {(i.system, i.value) for i in PatientIdentifier.objects.filter(patient=patient)}
        for system, value in item.mapped.identifiers:
            if (system[:255], value.strip()) not in have:
                patient_identifier_add(patient=patient, system=system[:255], value=value[:128])


def _plain_name(value: str) -> bool:
    return len(value) <= 64 and value.isalnum()


def _when(value: Any) -> Any:
    try:
        return mapping.parse_when(value, "meta.lastUpdated") if value else None
    except MappingError:
        return None


def _medication_concept(resource: dict[str, Any]) -> tuple[str, str, str]:
    concept = resource.get("code") or {}
    coding = mapping.first_coding(concept)
    return (mapping.concept_text(concept), str(coding.get("code") or ""), str(coding.get("system") or ""))
