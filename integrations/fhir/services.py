"""FHIR writes: import jobs (upload, command), pulls from EHR servers, exports (audited).

Imports commit one unit (bundle, NDJSON chunk, search page) at a time, each in its own
organization_context transaction, so a failed unit writes nothing and earlier ones stay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

from auditlog.context import set_actor
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from healthcrm.crypto import primary_fernet
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.fhir.bulk import BulkExport, ExportFile
from integrations.fhir.client import FhirClient, FhirClientError, SmartBackendAuth
from integrations.fhir.importer import Failure, ImportReport, UnitImporter, fhir_import_data
from integrations.fhir.parsing import FhirInputError, check_bundle_header, decode_text, ndjson_chunks
from integrations.models import (
    DEFAULT_PULL_TYPES,
    EXPORT_CURSOR,
    SUCCESS_STATUSES,
    AuthType,
    ExportMode,
    FhirConnection,
    ImportJob,
    JobKind,
    JobStatus,
    normalize_base_url,
)

logger = logging.getLogger(__name__)

PULL_PAGE_SIZE = "100"


def max_upload_bytes() -> int:
    return settings.FHIR_IMPORT_MAX_UPLOAD_BYTES


def _progress_key(job_id: int) -> str:
    return f"healthcrm:fhir-import:{job_id}:progress"


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def import_progress_set(job_id: int, processed: int, total: int) -> None:
    """Progress lives in Redis (counts only): the import's own transaction hides its rows until commit."""
    try:
        _redis().set(_progress_key(job_id), f"{processed}/{total}", ex=3600)
    except Exception:  # noqa: BLE001 - progress is cosmetic; the import must not fail for it
        logger.warning("could not record progress of import job %s", job_id)


def import_progress_get(job_id: int) -> tuple[int, int] | None:
    try:
        value = _redis().get(_progress_key(job_id))
    except Exception:  # noqa: BLE001
        return None
    if not value:
        return None
    processed, _, total = value.decode().partition("/")
    return int(processed), int(total)


@transaction.atomic
def import_job_create(*, data: bytes, source_system: str, actor: Any = None, kind: str = JobKind.UPLOAD) -> ImportJob:
    """Store an uploaded file (encrypted) as a queued job and enqueue its import after commit."""
    from integrations.fhir.tasks import fhir_import_task

    job = ImportJob.objects.create(
        kind=kind,
        source_system=(source_system.strip() or "upload")[:255],
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        size_bytes=len(data),
        payload=primary_fernet().encrypt(data),
    )
    organization_id = job.organization_id
    actor_id = job.created_by_id
    if settings.FHIR_IMPORT_EAGER:
        return job  # tests and scripts call import_job_run themselves
    transaction.on_commit(lambda: fhir_import_task.delay(organization_id, job.pk, actor_id=actor_id))
    return job


def job_status(report: ImportReport, error: str) -> str:
    """Failed (the job stopped), finished with failures (units rolled back), succeeded with
    warnings (everything written, some elements left out), or succeeded."""
    if error:
        return JobStatus.FAILED
    if not report.ok:
        return JobStatus.PARTIAL
    return JobStatus.WARNINGS if report.warning_total else JobStatus.SUCCEEDED


def _units_in(organization: Organization) -> Callable[[Callable[[], None]], None]:
    def run(fn: Callable[[], None]) -> None:
        with organization_context(organization):
            fn()

    return run


def import_job_run(*, organization: Organization, job_id: int, actor: Any = None) -> ImportJob | None:
    """Run a queued import job (outside any transaction: each unit commits on its own)."""
    with organization_context(organization):
        claimed = ImportJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=timezone.now()
        )
        job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or not claimed:
        return job  # gone, or another worker has it
    report = ImportReport()
    error = ""
    try:
        data = primary_fernet().decrypt(bytes(job.payload))
        job.payload = b""

        def progress(processed: int, total: int) -> None:
            import_progress_set(job_id, processed, total)

        with set_actor(actor):
            fhir_import_data(
                data,
                source_system=job.source_system,
                actor=actor,
                report=report,
                run_unit=_units_in(organization),
                progress=progress,
            )
    except Exception as exc:  # noqa: BLE001 - a job must end in a state people can see
        # No traceback text: validation errors echo the input (PHI). Type and place only.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame is not None else "?"
        logger.error("import job %s failed: %s at %s", job_id, type(exc).__name__, where)
        error = f"The import stopped unexpectedly ({type(exc).__name__})."
    status = job_status(report, error)
    if not error and report.ok is False and report.units_failed == report.units:
        status = JobStatus.FAILED
    with organization_context(organization):
        ImportJob.objects.filter(pk=job_id).update(
            status=status,
            payload=b"",
            report=report.as_dict(),
            error=error,
            total=sum(sum(c.values()) for c in report.counts.values()),
            processed=sum(sum(c.values()) for c in report.counts.values()),
            finished_at=timezone.now(),
        )
        return ImportJob.objects.get(pk=job_id)


# -- Pulls -----------------------------------------------------------------------------------------


def connection_client(connection: FhirConnection, **kwargs: Any) -> FhirClient:
    smart = None
    if connection.auth_type == AuthType.SMART:
        smart = SmartBackendAuth(
            token_url=connection.token_url,
            client_id=connection.client_id,
            private_key_pem=connection.private_key_pem,
            key_id=connection.key_id,
            scope=connection.scope,
        )
    bearer = connection.bearer_token if connection.auth_type == AuthType.BEARER else ""
    kwargs.setdefault("timeout", float(connection.request_timeout_seconds))
    return FhirClient(connection.base_url, bearer_token=bearer, smart=smart, **kwargs)


@transaction.atomic
def fhir_connection_save(*, connection: FhirConnection, base_url: str | None = None) -> FhirConnection:
    """Create or update a connection from the staff form (validated there). A new base URL on an
    existing connection is a move of the same server (`fhir_connection_base_url_change`): the form
    asks for that confirmation. The change is in the audit log (secrets masked)."""
    if connection.pk and base_url and normalize_base_url(base_url) != normalize_base_url(connection.base_url):
        connection.full_clean(exclude=["base_url"])
        connection.save()
        return fhir_connection_base_url_change(connection=connection, base_url=base_url)
    if base_url:
        connection.base_url = base_url
    connection.full_clean()
    connection.save()
    return connection


@transaction.atomic
def fhir_connection_keys_generate(*, connection: FhirConnection) -> FhirConnection:
    """A new SMART key pair for the connection (the old one stops working once the EHR has the new
    JWKS: register it there before the next pull). Switches the connection to SMART."""
    from integrations.fhir.smart import key_pair_generate

    pem, connection.key_id = key_pair_generate()
    connection.private_key_pem = pem  # type: ignore[assignment]  # the field stores the text encrypted
    connection.auth_type = AuthType.SMART
    connection.save(update_fields=["private_key_pem", "key_id", "auth_type", "updated_at"])
    return connection


@transaction.atomic
def fhir_connection_base_url_change(*, connection: FhirConnection, base_url: str) -> FhirConnection:
    """Point a connection at its server's new address (a deliberate act: the same server).

    Links stay keyed by the connection (`source_system`, fixed at creation) and the cursors stay,
    so the next pull updates what earlier pulls imported. A different server needs a new
    connection. The change is in the audit log (FhirConnection is registered).
    """
    connection.base_url = normalize_base_url(base_url)
    connection.full_clean()
    connection.save(update_fields=["base_url", "updated_at"])
    return connection


def _latest(page: dict[str, Any], current: str | None) -> str | None:
    latest = current
    for entry in page.get("entry") or []:
        value = (
            ((entry.get("resource") or {}).get("meta") or {}).get("lastUpdated") if isinstance(entry, dict) else None
        )
        if isinstance(value, str) and (latest is None or value > latest):
            latest = value
    return latest


# A crashed pull's claim lapses this long after its deadline (the last page's import may end
# after the deadline: no request starts after it, but what was fetched is still written).
CLAIM_GRACE = timedelta(minutes=5)


def fhir_connection_claim(*, connection_id: int, deadline_seconds: float) -> bool:
    """Claim the connection for one pull: a conditional UPDATE that touches one row or none.

    The claim is committed before any request, so a second pull (beat every minute, "Pull now")
    finds it taken and does nothing; it lapses by itself after the deadline should the worker die.
    """
    now = timezone.now()
    claimed = (
        FhirConnection.objects.filter(pk=connection_id, is_active=True)
        .filter(Q(pull_claimed_until__isnull=True) | Q(pull_claimed_until__lt=now))
        .update(pull_claimed_until=now + timedelta(seconds=deadline_seconds) + CLAIM_GRACE)
    )
    return claimed == 1


def _pull_progress(job_id: int, report: ImportReport, resource_type: str, done: int, types: int) -> None:
    """The job's row says what has arrived so far, committed page by page (counts and types only)."""
    data = report.as_dict()
    data["progress"] = {"resource_type": resource_type, "types_done": done, "types": types}
    counted = sum(sum(c.values()) for c in report.counts.values())
    ImportJob.objects.filter(pk=job_id).update(report=data, processed=counted)


def fhir_pull_connection(
    *,
    organization: Organization,
    connection_id: int,
    actor: Any = None,
    client: FhirClient | None = None,
    deadline_seconds: float | None = None,
) -> ImportJob | None:
    """Pull what changed since the last success, type by type, page by page (each page one unit).

    A type's cursor moves only when all of its pages imported; a failed page is reported and the
    next run asks again from the old cursor. The connection is claimed for the pull (None when
    another pull holds it), and the pull stops at its deadline (`pull_deadline_minutes`, or
    `deadline_seconds`) or as soon as the server stops answering; what was imported stays.
    """
    with organization_context(organization):
        connection = FhirConnection.objects.filter(pk=connection_id, is_active=True).first()
        if connection is None:
            return None
        if deadline_seconds is None:
            deadline_seconds = 60.0 * connection.pull_deadline_minutes
        if not fhir_connection_claim(connection_id=connection_id, deadline_seconds=deadline_seconds):
            logger.info("connection %s is being pulled already: this pull does nothing", connection_id)
            return None
        job = ImportJob.objects.create(
            kind=JobKind.PULL,
            connection=connection,
            source_system=connection.source_system,
            status=JobStatus.RUNNING,
            started_at=timezone.now(),
        )
    try:
        return _pull(organization, connection, job, actor, client, deadline_seconds)
    finally:
        with organization_context(organization):
            FhirConnection.objects.filter(pk=connection_id).update(pull_claimed_until=None)


def _pull(
    organization: Organization,
    connection: FhirConnection,
    job: ImportJob,
    actor: Any,
    client: FhirClient | None,
    deadline_seconds: float,
) -> ImportJob:
    client = client or connection_client(connection)
    client.start_deadline(deadline_seconds)
    if connection.export_mode != ExportMode.SEARCH:
        return _pull_export(organization, connection, job, actor, client)
    report = ImportReport()
    cursors = dict(connection.cursors or {})
    error = ""
    run = _units_in(organization)
    types = connection.pull_types
    with set_actor(actor):
        for done, resource_type in enumerate(types):
            since = cursors.get(resource_type)
            params = {"_count": PULL_PAGE_SIZE, "_sort": "_lastUpdated"}
            if since:
                params["_lastUpdated"] = f"gt{since}"
            latest = since
            type_ok = True
            with organization_context(organization):
                _pull_progress(job.pk, report, resource_type, done, len(types))
            try:
                for page in client.search(resource_type, params):
                    try:
                        check_bundle_header({k: v for k, v in page.items() if k != "entry"})
                    except FhirInputError as exc:
                        report.units += 1
                        report.units_failed += 1
                        report.fail(Failure(-1, "Bundle", exc.field, str(exc)))
                        type_ok = False
                        continue
                    entries = [e for e in page.get("entry") or [] if (e.get("search") or {}).get("mode") != "outcome"]
                    importer = UnitImporter(source_system=connection.source_system, actor=actor, report=report)
                    failed_before = report.units_failed

                    def unit(importer: UnitImporter = importer, entries: list[Any] = entries) -> Any:
                        return importer._run(enumerate(entries), "searchset")

                    run(unit)
                    if report.units_failed > failed_before:
                        type_ok = False
                    else:
                        latest = _latest(page, latest)
                    with organization_context(organization):
                        _pull_progress(job.pk, report, resource_type, done, len(types))
            except FhirClientError as exc:
                error = f"{resource_type}: {exc}"
                type_ok = False
                if exc.permanent or exc.server_down:
                    break  # asking for the next type would fail (or hang) the same way
                continue
            if type_ok and latest:
                cursors[resource_type] = latest
    return _pull_finish(organization, connection, job, report, error, cursors)


def _pull_finish(
    organization: Organization,
    connection: FhirConnection,
    job: ImportJob,
    report: ImportReport,
    error: str,
    cursors: dict[str, Any],
) -> ImportJob:
    now = timezone.now()
    status = job_status(report, error)
    with organization_context(organization):
        counted = sum(sum(c.values()) for c in report.counts.values())
        ImportJob.objects.filter(pk=job.pk).update(
            status=status, report=report.as_dict(), error=error, total=counted, processed=counted, finished_at=now
        )
        changes: dict[str, Any] = {
            "cursors": cursors,
            "last_run_at": now,
            "last_error": error or _first_failure(report),
        }
        if status in SUCCESS_STATUSES:
            changes["last_success_at"] = now
        FhirConnection.objects.filter(pk=connection.pk).update(**changes)
        return ImportJob.objects.get(pk=job.pk)


EXPORT_PATHS: dict[str, str] = {ExportMode.SYSTEM: "$export", ExportMode.PATIENT: "Patient/$export"}


def _export_order(types: list[str]) -> Callable[[ExportFile], tuple[int, str]]:
    """Dependencies first: the connection's order of types (Patient, Practitioner, Location, ...)."""
    order = {t: i for i, t in enumerate(types + [t for t in DEFAULT_PULL_TYPES if t not in types])}
    return lambda f: (order.get(f.type, len(order)), f.type)


def _export_errors(report: ImportReport, number: int, data: bytes) -> None:
    """The manifest's error files (OperationOutcome NDJSON): one failure per issue, as coded (issue
    code, severity, coded details); their free text is not kept (it may name a patient)."""
    for line_no, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        try:
            outcome = json.loads(line) if line.strip() else None
        except ValueError:
            outcome = None
        if not isinstance(outcome, dict):
            continue
        for issue in outcome.get("issue") or [{}]:
            issue = issue if isinstance(issue, dict) else {}
            details = issue.get("details")
            codings = details.get("coding") if isinstance(details, dict) else None
            first = codings[0] if isinstance(codings, list) and codings else None
            detail = first.get("code") if isinstance(first, dict) else None
            said = f"{str(issue.get('severity') or 'error')[:20]}: {str(issue.get('code') or 'unknown')[:40]}"
            if isinstance(detail, str) and detail:
                said += f" ({detail[:40]})"
            report.fail(
                Failure(
                    line_no,
                    "OperationOutcome",
                    f"error file {number}",
                    f"The server could not export some resources: {said}.",
                )
            )


def _pull_export(
    organization: Organization, connection: FhirConnection, job: ImportJob, actor: Any, client: FhirClient
) -> ImportJob:
    """A Bulk Data `$export` (see integrations/fhir/bulk.py): kick-off with `_type` and `_since` (the
    last successful export's transactionTime), wait for the manifest, import each output file in
    dependency order through the NDJSON path (one unit per chunk), report the error files, DELETE the
    status URL. The next `_since` moves only when the export imported without failures."""
    report = ImportReport()
    cursors = dict(connection.cursors or {})
    error = ""
    run = _units_in(organization)
    types = connection.pull_types

    def progress(server_says: str, done: int = 0, files: int = 0, rtype: str = "$export") -> None:
        with organization_context(organization):
            data = report.as_dict()
            data["progress"] = {"resource_type": rtype, "types_done": done, "types": files, "export": server_says}
            counted = sum(sum(c.values()) for c in report.counts.values())
            ImportJob.objects.filter(pk=job.pk).update(report=data, processed=counted)

    export = BulkExport(client, on_progress=progress)
    path = EXPORT_PATHS.get(connection.export_mode, f"Group/{quote(connection.export_group_id, safe='')}/$export")
    with set_actor(actor):
        try:
            export.kick_off(path, types=types, since=str(cursors.get(EXPORT_CURSOR) or ""))
            manifest = export.wait()
            outputs = sorted(manifest.output, key=_export_order(types))
            for done, file in enumerate(outputs):
                progress("downloading", done, len(outputs), file.type)
                data = export.download(file, with_token=manifest.requires_access_token, max_bytes=max_upload_bytes())
                try:
                    for chunk in ndjson_chunks(decode_text(data)):
                        importer = UnitImporter(source_system=connection.source_system, actor=actor, report=report)
                        run(partial(importer.run_ndjson, chunk))
                except FhirInputError as exc:
                    report.units += 1
                    report.units_failed += 1
                    report.fail(
                        Failure(exc.entry if exc.entry is not None else -1, file.type, exc.field or "(file)", str(exc))
                    )
                del data
            for number, file in enumerate(manifest.error, start=1):
                _export_errors(
                    report,
                    number,
                    export.download(file, with_token=manifest.requires_access_token, max_bytes=max_upload_bytes()),
                )
            if report.ok:
                cursors[EXPORT_CURSOR] = manifest.transaction_time
        except FhirClientError as exc:
            error = f"$export: {exc}"
        finally:
            export.cleanup()
    return _pull_finish(organization, connection, job, report, error, cursors)


def _first_failure(report: ImportReport) -> str:
    if not report.failures:
        return ""
    f = report.failures[0]
    return f"entry {f.entry} ({f.resource_type}) {f.field}: {f.reason}"


def connections_due(now: datetime | None = None) -> list[int]:
    """Ids of this organization's active connections whose interval has passed and that no pull holds."""
    now = now or timezone.now()
    due = []
    for connection in FhirConnection.objects.filter(is_active=True):
        if connection.pull_claimed_until is not None and connection.pull_claimed_until >= now:
            continue
        if (
            connection.last_run_at is None
            or (now - connection.last_run_at).total_seconds() >= 60 * connection.interval_minutes
        ):
            due.append(connection.pk)
    return due


# -- Export ----------------------------------------------------------------------------------------
