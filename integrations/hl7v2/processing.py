"""The processing core: one received message -> its outcome and the ACK to send, exactly once.

`hl7_message_receive(raw)` is a plain function (the listener calls it from a thread; tests call
it directly):

1. Refusals before routing (AR, nothing written, only the type logged): no MSH, wrong separators,
   binary data, no control id (MSH-10), an unregistered sender or a wrong credential.
2. In the sender's organization (`organization_context`), one transaction: a control id this
   sender already used gets the ACK it got then, and nothing changes; an unsupported type is
   logged (type and outcome, no raw message) and refused (AR); a supported one is applied in a
   savepoint through patients' services (which write their audit rows in this transaction). If it
   cannot be applied, the savepoint is rolled back (nothing written) and the log row says which
   field and why (AE). The log row holds the ACK and the raw message, encrypted, until
   HL7_RAW_RETENTION_DAYS have passed.
3. The ACK is returned only after the transaction committed: an AA means the change is durable.

Out of order: an S13/S14/S15/S26 for an appointment this sender has not booked yet is held
(Hl7HeldMessage, AA with a warning) and applied when the S12 arrives, in the S12's transaction;
`held_messages_expire` reports those still waiting after HL7_HOLD_MINUTES.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from healthcrm.models import Location
from healthcrm.tenancy import organization_context
from integrations.hl7v2 import mapping
from integrations.hl7v2.models import (
    Hl7HeldMessage,
    Hl7Message,
    Hl7Sender,
    MessageState,
    Outcome,
    secret_digest,
    sender_lookup_key,
)
from integrations.hl7v2.parsing import (
    APPLICATION_INTERNAL_ERROR,
    REQUIRED_FIELD_MISSING,
    UNKNOWN_KEY_IDENTIFIER,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    Header,
    Hl7Error,
    Message,
    build_ack,
    decode,
    read_header,
)
from integrations.hl7v2.selectors import sender_route_get
from integrations.models import FhirResourceLink
from patients.models import Appointment, AppointmentKind, AppointmentStatus, Patient, PatientIdentifier, Practitioner
from patients.scheduling.selectors import practitioner_get_by_npi
from patients.scheduling.services import appointment_import_upsert, practitioner_import_upsert
from patients.selectors import patient_match
from patients.services import patient_create, patient_identifier_add, patient_merge, patient_update

logger = logging.getLogger("integrations.hl7v2")

SUPPORTED = {
    "ADT": frozenset({"A04", "A08", "A28", "A31", "A40"}),
    "SIU": frozenset({"S12", "S13", "S14", "S15", "S26"}),
}
# Identifier types we do not keep (HL7 table 0203): a CRM has no use for social security numbers.
SKIPPED_IDENTIFIER_TYPES = (":SS",)

# Model fields (ValidationError keys from patients' services) -> the HL7 field they came from.
FIELD_SOURCES = {
    "mrn": "PID-3",
    "given_name": "PID-5",
    "family_name": "PID-5",
    "date_of_birth": "PID-7",
    "sex": "PID-8",
    "address_line1": "PID-11",
    "address_line2": "PID-11",
    "address_city": "PID-11",
    "address_state": "PID-11",
    "address_postal_code": "PID-11",
    "address_country": "PID-11",
    "phone_home": "PID-13",
    "phone_mobile": "PID-13",
    "email": "PID-13",
    "preferred_language": "PID-15",
    "value": "PID-3",
    "system": "PID-3",
    "patient": "PID-3",
    "patient_id": "PID-3",
    "starts_at": "TQ1-7",
    "ends_at": "TQ1-8",
    "status": "SCH-25",
    "reason": "SCH-7",
    "practitioner": "AIP-3",
    "practitioner_id": "AIP-3",
    "display_name": "AIP-3",
    "npi": "AIP-3",
    "location": "AIL-3",
    "location_id": "AIL-3",
    "name": "AIL-3",
}
_QUOTED = re.compile(r"[\"'“”‘’«»][^\"'“”‘’«»]*[\"'“”‘’«»]")


@dataclass(frozen=True)
class Received:
    """What the listener sends back, and what happened (for its log line and the tests)."""

    ack: str
    outcome: str
    state: str
    duplicate: bool = False


def _refused(header: Header | None, error: Hl7Error, now: datetime, what: str) -> Received:
    # Logged by type only: the refused message is not kept anywhere.
    logger.info("hl7 refused (%s): %s, type %s", what, error.field, header.message_type if header else "-")
    return Received(build_ack(header, Outcome.AR, now=now, error=error), Outcome.AR, MessageState.REFUSED)


def sender_for(header: Header, *, client_cert_sha256: str = "") -> Hl7Sender | None:
    """The active sender registered for MSH-4/MSH-3 whose credential matches, or None."""
    sender = sender_route_get(sender_lookup_key(header.sending_facility, header.sending_application))
    if sender is None or not sender.is_active or not sender.organization.is_active:
        return None
    if sender.secret_digest and not hmac.compare_digest(secret_digest(header.security), sender.secret_digest):
        return None
    if sender.client_cert_sha256 and not hmac.compare_digest(client_cert_sha256.lower(), sender.client_cert_sha256):
        return None
    return sender


def hl7_message_receive(raw: bytes, *, client_cert_sha256: str = "", now: datetime | None = None) -> Received:
    """Process one message (the bytes inside an MLLP frame) and return the ACK to send.

    Never raises for bad input: every problem is an AR or AE ACK. The ACK is returned after the
    transaction that applied the message committed.
    """
    now = now or timezone.now()
    text = decode(raw)
    try:
        header = read_header(text)
    except Hl7Error as exc:
        return _refused(None, exc, now, "header")
    if not header.control_id:
        error = Hl7Error("MSH-10", "no message control id", code=REQUIRED_FIELD_MISSING, refuse=True)
        return _refused(header, error, now, "header")
    sender = sender_for(header, client_cert_sha256=client_cert_sha256)
    if sender is None:
        error = Hl7Error("MSH-4", "this facility and application are not registered", code="207", refuse=True)
        return _refused(header, error, now, "unregistered sender")
    try:
        return _process(sender, header, text, now)
    except IntegrityError:
        # The same control id, sent again on another connection, committed first: its ACK.
        with organization_context(sender.organization):
            log = Hl7Message.objects.filter(sender=sender, control_id=header.control_id).first()
        if log is None:
            raise
        return Received(log.ack, log.outcome, log.state, duplicate=True)


def _process(sender: Hl7Sender, header: Header, text: str, now: datetime) -> Received:
    with organization_context(sender.organization):
        known = Hl7Message.objects.filter(sender=sender, control_id=header.control_id).first()
        if known is not None:
            logger.info("hl7 resend of message %s: same ACK (%s)", known.pk, known.outcome)
            return Received(known.ack, known.outcome, known.state, duplicate=True)
        log = Hl7Message(sender=sender, control_id=header.control_id, message_type=header.message_type, received_at=now)
        warnings: list[tuple[str, str]] = []
        error: Hl7Error | None = None
        held = False
        supported = SUPPORTED.get(header.message_code)
        if supported is None or header.trigger_event not in supported:
            code = UNSUPPORTED_MESSAGE_TYPE if supported is None else UNSUPPORTED_EVENT_CODE
            error = Hl7Error("MSH-9", "this message type is not supported", code=code, refuse=True)
        else:
            try:
                with transaction.atomic():  # a savepoint: an error rolls back everything the message wrote
                    held = _apply(Message(text), header, sender, log, now, warnings)
            except Hl7Error as exc:
                error = exc
            except ValidationError as exc:
                error = _validation_error(exc, header)
            except DatabaseError as exc:
                error = Hl7Error(header.message_code, f"refused by the database ({type(exc).__name__})", code="207")
        if error is not None:
            log.outcome = Outcome.AR if error.refuse else Outcome.AE
            log.state = MessageState.REFUSED if error.refuse else MessageState.ERROR
            log.error_field, log.error_reason = error.field[:32], error.reason[:255]
        else:
            log.outcome = Outcome.AA
            log.state = MessageState.HELD if held else MessageState.APPLIED
        if log.state != MessageState.REFUSED:
            # Kept encrypted for support and for applying a held message later; refusals are not kept.
            log.raw = text  # type: ignore[assignment]  # encrypted field
            log.raw_expires_at = now + timedelta(days=settings.HL7_RAW_RETENTION_DAYS)
        log.processed_at = None if held else now
        log.ack = build_ack(header, log.outcome, now=now, error=error, warnings=warnings)
        log.save()
        if held:
            expires = now + timedelta(minutes=settings.HL7_HOLD_MINUTES)
            Hl7HeldMessage.objects.create(
                message=log, sender=sender, appointment_key=log.appointment_key, expires_at=expires
            )
    logger.info("hl7 message %s %s: %s %s %s", log.pk, log.message_type, log.outcome, log.state, log.error_field)
    return Received(log.ack, log.outcome, log.state)


def _validation_error(exc: ValidationError, header: Header) -> Hl7Error:
    """A service's ValidationError as an AE naming the HL7 field; quoted values are cut out."""
    name, message = "", "not accepted"
    if hasattr(exc, "error_dict"):
        name, errors = next(iter(exc.error_dict.items()))
        message = errors[0].messages[0] if errors and errors[0].messages else message
    elif exc.messages:
        message = exc.messages[0]
    default = "PID" if header.message_code == "ADT" else "SCH"
    field = FIELD_SOURCES.get(name, default)
    return Hl7Error(field, _QUOTED.sub("(value)", message)[:255], code=APPLICATION_INTERNAL_ERROR)


# -- Applying ------------------------------------------------------------------------------------


def _apply(
    msg: Message, header: Header, sender: Hl7Sender, log: Hl7Message, now: datetime, warnings: list[tuple[str, str]]
) -> bool:
    """Apply one supported message; True when it was held for its appointment instead."""
    if not msg.has("PID") and header.message_code == "ADT":
        raise Hl7Error("PID", "the message has no PID segment", code=REQUIRED_FIELD_MISSING)
    if header.message_code == "ADT":
        if header.trigger_event == "A40":
            _merge(msg)
        else:
            _patient_upsert(msg, warnings)
        return False
    if not msg.has("SCH"):
        raise Hl7Error("SCH", "the message has no SCH segment", code=REQUIRED_FIELD_MISSING)
    return _schedule(msg, header.trigger_event, sender, log, now, warnings)


def _follow_merges(patient: Patient) -> Patient:
    """A patient merged into another: the survivor (a PM system keeps sending the old MRN)."""
    seen = {patient.pk}
    while patient.merged_into_id is not None and patient.merged_into_id not in seen:
        patient = Patient.objects.get(pk=patient.merged_into_id)
        seen.add(patient.pk)
    return patient


def _kept_identifiers(identifiers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(s, v) for s, v in identifiers if not s.endswith(SKIPPED_IDENTIFIER_TYPES)]


def _patient_upsert(msg: Message, warnings: list[tuple[str, str]], *, create: bool = True) -> Patient:
    """PID -> the patient it names, updated; created when no identifier matches (`create`)."""
    found = mapping.map_patient(msg, require_demographics=False)
    patient = patient_match(identifiers=_kept_identifiers(found.identifiers), mrn=found.mrn)
    if patient is None:
        if not create:
            raise Hl7Error("PID-3", "no patient with these identifiers", code=UNKNOWN_KEY_IDENTIFIER)
        mapped = mapping.map_patient(msg, require_demographics=True)
        fields: dict[str, Any] = dict(mapped.fields)
        patient = patient_create(
            mrn=mapped.mrn,
            given_name=str(fields.pop("given_name")),
            family_name=str(fields.pop("family_name")),
            date_of_birth=fields.pop("date_of_birth"),
            **fields,
        )
    else:
        mapped = found
        patient = _follow_merges(patient)
        # Only what changed: an SIU or A08 repeating the record as it is writes nothing (no audit
        # entry, no validation queries), which is most of them.
        changes = {name: value for name, value in mapped.fields.items() if getattr(patient, name) != value}
        if changes:
            patient_update(patient=patient, **changes)
    warnings.extend(mapped.warnings)
    have = {(i.system, i.value) for i in PatientIdentifier.objects.filter(patient=patient)}
    for system, value in _kept_identifiers(mapped.identifiers):
        if (system, value) not in have:
            patient_identifier_add(patient=patient, system=system, value=value)
    return patient


def _merge(msg: Message) -> None:
    """A40: the patient in MRG-1 is merged into the one in PID-3 (patients' merge, audited)."""
    mrn, identifiers = mapping.patient_keys(msg)
    survivor = patient_match(identifiers=_kept_identifiers(identifiers), mrn=mrn)
    if survivor is None:
        raise Hl7Error("PID-3", "no patient with these identifiers", code=UNKNOWN_KEY_IDENTIFIER)
    if not msg.has("MRG"):
        raise Hl7Error("MRG", "an A40 needs an MRG segment", code=REQUIRED_FIELD_MISSING)
    old_mrn, old_identifiers = mapping.patient_keys(msg, "MRG", 1)
    duplicate = patient_match(identifiers=_kept_identifiers(old_identifiers), mrn=old_mrn)
    if duplicate is None:
        raise Hl7Error("MRG-1", "no patient with these identifiers", code=UNKNOWN_KEY_IDENTIFIER)
    survivor = _follow_merges(survivor)
    if duplicate.pk == survivor.pk or duplicate.merged_into_id == survivor.pk:
        return  # merged already (by staff, or an earlier message)
    try:
        patient_merge(survivor=survivor, duplicate=duplicate)
    except ValidationError as exc:
        reason = exc.messages[0] if exc.messages else "the records cannot be merged"
        raise Hl7Error("MRG-1", _QUOTED.sub("(value)", reason)[:255], code=APPLICATION_INTERNAL_ERROR) from None


def _link(sender: Hl7Sender, kind: str, key: str) -> FhirResourceLink | None:
    return FhirResourceLink.objects.filter(
        source_system=sender.source_system, resource_type=kind, resource_id=key
    ).first()


def _link_create(sender: Hl7Sender, kind: str, key: str, obj: Any) -> None:
    FhirResourceLink.objects.create(
        source_system=sender.source_system,
        resource_type=kind,
        resource_id=key,
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=obj.pk,
        content_hash="",
    )


def _practitioner(sender: Hl7Sender, mapped: mapping.MappedAppointment) -> Practitioner | None:
    """AIP-3's practitioner: linked before, else by NPI, else by name; else created (and linked)."""
    if not mapped.practitioner_id:
        return None
    link = _link(sender, "Practitioner", mapped.practitioner_id)
    if link is not None and link.object_id:
        practitioner = Practitioner.objects.filter(pk=link.object_id).first()
        if practitioner is not None:
            return practitioner
    practitioner = practitioner_get_by_npi(npi=mapped.practitioner_npi) if mapped.practitioner_npi else None
    if practitioner is None and mapped.practitioner_name:
        practitioner = Practitioner.objects.filter(display_name__iexact=mapped.practitioner_name).first()
    if practitioner is None:
        if not mapped.practitioner_name:
            raise Hl7Error("AIP-3", "a new practitioner needs a name", code=REQUIRED_FIELD_MISSING)
        practitioner = practitioner_import_upsert(display_name=mapped.practitioner_name, npi=mapped.practitioner_npi)
    if link is None:
        _link_create(sender, "Practitioner", mapped.practitioner_id, practitioner)
    return practitioner


def _location(sender: Hl7Sender, mapped: mapping.MappedAppointment) -> Location | None:
    """AIL-3's location: linked before, else by name; else created (and linked)."""
    if not mapped.location_id:
        return None
    link = _link(sender, "Location", mapped.location_id)
    if link is not None and link.object_id:
        location = Location.objects.filter(pk=link.object_id).first()
        if location is not None:
            return location
    location = Location.objects.filter(name__iexact=mapped.location_name).first() if mapped.location_name else None
    if location is None:
        # A location is the organization's (healthcrm), not a patient's: no patients service (as FHIR).
        location = Location(name=mapped.location_name or mapped.location_id)
        location.full_clean()
        with transaction.atomic():
            location.save()
    if link is None:
        _link_create(sender, "Location", mapped.location_id, location)
    return location


STATUS_FOR_TRIGGER = {"S15": AppointmentStatus.CANCELLED, "S26": AppointmentStatus.NO_SHOW}


def _schedule(
    msg: Message, trigger: str, sender: Hl7Sender, log: Hl7Message, now: datetime, warnings: list[tuple[str, str]]
) -> bool:
    key = mapping.appointment_key(msg)
    log.appointment_key = key
    existing = Appointment.objects.filter(source_system=sender.source_system, source_id=key).first()
    if existing is None and trigger != "S12":
        warnings.append(("SCH-2", "held until this appointment's SIU^S12 arrives"))
        return True
    mapped = mapping.map_appointment(
        msg,
        zone=sender.organization.zone,
        default_minutes=sender.default_minutes,
        need_times=existing is None or trigger == "S13",
    )
    if msg.has("PID"):
        patient = _patient_upsert(msg, warnings)
    elif existing is not None:
        patient = existing.patient
    else:
        raise Hl7Error("PID", "a new appointment needs a PID segment", code=REQUIRED_FIELD_MISSING)
    practitioner = _practitioner(sender, mapped)
    if practitioner is None:
        if existing is None:
            raise Hl7Error("AIP-3", "a new appointment needs a practitioner", code=REQUIRED_FIELD_MISSING)
        practitioner = existing.practitioner
    location = _location(sender, mapped)
    status = STATUS_FOR_TRIGGER.get(trigger) or mapped.status
    if status is None:
        status = existing.status if existing is not None else AppointmentStatus.BOOKED
    kind = AppointmentKind.TELEHEALTH if mapped.telehealth else AppointmentKind.IN_PERSON
    appointment_import_upsert(
        appointment=existing,
        source_system=sender.source_system,
        source_id=key,
        patient_id=patient.pk,
        practitioner_id=practitioner.pk,
        starts_at=mapped.starts_at or existing.starts_at,
        ends_at=mapped.ends_at or existing.ends_at,
        status=status,
        kind=kind if existing is None or mapped.telehealth else existing.kind,
        reason=mapped.reason or (str(existing.reason) if existing is not None else ""),
        appointment_type=mapped.appointment_type or (existing.appointment_type if existing else None),
        location_id=location.pk if location is not None else (existing.location_id if existing else None),
    )
    if trigger == "S12":
        _apply_held(sender, key, now)
    return False


def _apply_held(sender: Hl7Sender, key: str, now: datetime) -> None:
    """The changes that arrived before this S12, in the order they arrived, each in a savepoint."""
    held = list(
        Hl7HeldMessage.objects.filter(sender=sender, appointment_key=key)
        .select_related("message")
        .order_by("message_id")
    )
    for item in held:
        message = item.message
        warnings: list[tuple[str, str]] = []
        try:
            text = str(message.raw)
            header = read_header(text)
            with transaction.atomic():
                _schedule(Message(text), header.trigger_event, sender, message, now, warnings)
            message.state = MessageState.APPLIED
        except Hl7Error as exc:
            message.state, message.error_field, message.error_reason = MessageState.ERROR, exc.field, exc.reason
        except ValidationError as exc:
            error = _validation_error(exc, Header(message_code="SIU"))
            message.state, message.error_field, message.error_reason = MessageState.ERROR, error.field, error.reason
        message.processed_at = now
        message.save(update_fields=["state", "error_field", "error_reason", "processed_at", "updated_at"])
        item.delete()
        logger.info("hl7 held message %s: %s %s", message.pk, message.state, message.error_field)


# -- Housekeeping (beat) ---------------------------------------------------------------------------


def held_messages_expire(*, now: datetime | None = None) -> int:
    """Held messages whose S12 never came: reported (state expired, field and reason), no longer held."""
    now = now or timezone.now()
    count = 0
    for item in Hl7HeldMessage.objects.filter(expires_at__lte=now).select_related("message"):
        message = item.message
        message.state = MessageState.EXPIRED
        message.error_field = "SCH-2"
        message.error_reason = (
            f"no SIU^S12 for this appointment arrived within {settings.HL7_HOLD_MINUTES} minutes: not applied"
        )[:255]
        message.processed_at = now
        message.save(update_fields=["state", "error_field", "error_reason", "processed_at", "updated_at"])
        item.delete()
        count += 1
    return count


def raw_messages_purge(*, now: datetime | None = None) -> int:
    """Raw copies past their retention are cleared (the log row, its ACK and outcome stay)."""
    now = now or timezone.now()
    expired = Hl7Message.objects.filter(raw_expires_at__lte=now).exclude(state=MessageState.HELD)
    count = 0
    for message in expired.only("pk"):
        message.raw = ""
        message.raw_expires_at = None
        message.save(update_fields=["raw", "raw_expires_at", "updated_at"])
        count += 1
    return count
