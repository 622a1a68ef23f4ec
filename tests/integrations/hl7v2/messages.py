"""HL7 v2.5.1 test messages, shaped after the specification's examples (chapter 3's ADT^A04
"REGADT/MCM" registration, A40 merge with MRG; chapter 10's SIU^S12 with SCH, TQ1, PID, RGS, AIS,
AIP, AIL), with synthetic people. Segments are joined with CR as on the wire."""

from __future__ import annotations

FACILITY = "NORTHCLINIC"
APPLICATION = "PMSYS"
SECRET = "s3cret-shared-with-the-pm-system"


def msh(
    message_type: str,
    control_id: str,
    *,
    application: str = APPLICATION,
    facility: str = FACILITY,
    secret: str = SECRET,
    stamp: str = "20261201080000",
) -> str:
    return f"MSH|^~\\&|{application}|{facility}|HEALTHCRM|CRM|{stamp}|{secret}|{message_type}|{control_id}|P|2.5.1"


def pid(
    mrn: str = "191919",
    *,
    family: str = "TESTPERSON",
    given: str = "JAMIE",
    middle: str = "Q",
    birth: str = "19560129",
    sex: str = "F",
    extra_ids: str = "~371669256^^^USSSA^SS~A-77^^^OTHERPM&2.16.840.1.113883.19.5&ISO^PI",
    address: str = "171 ELM ST^APT 2^SPRINGFIELD^IL^62704^USA",
    phones: str = "^PRN^PH^^1^217^5550142~^PRN^CP^^1^217^5550199~^NET^Internet^jamie@example.org",
    language: str = "SPA^Spanish^ISO639",
) -> str:
    ids = "~".join(part for part in (f"{mrn}^^^GENHOS^MR" if mrn else "", extra_ids.lstrip("~")) if part)
    return f"PID|1||{ids}||{family}^{given}^{middle}^^^^L||{birth}|{sex}|||{address}||{phones}||{language}|M|||||||||||"


def adt(trigger: str, control_id: str, *, pid_segment: str | None = None, **header) -> str:
    """ADT^A04 (register), A08 (update), A28 (add person), A31 (update person)."""
    structure = {"A04": "ADT_A01", "A08": "ADT_A01", "A28": "ADT_A05", "A31": "ADT_A05"}[trigger]
    segments = [
        msh(f"ADT^{trigger}^{structure}", control_id, **header),
        f"EVN|{trigger}|20261201080000|||",
        pid_segment if pid_segment is not None else pid(),
        "PV1|1|O|CLINIC1^^^NORTHCLINIC||||1234567893^DOCTOR^DANA^^^DR^^^NPI|||||||||||V1001",
    ]
    return "\r".join(segments) + "\r"


def a40(control_id: str, *, survivor: str, duplicate: str) -> str:
    return (
        "\r".join(
            [
                msh("ADT^A40^ADT_A39", control_id),
                "EVN|A40|20261201090000",
                f"PID|1||{survivor}^^^GENHOS^MR||TESTPERSON^JAMIE||19560129|F",
                f"MRG|{duplicate}^^^GENHOS^MR",
            ]
        )
        + "\r"
    )


def siu(
    trigger: str,
    control_id: str,
    *,
    appointment_id: str = "60001",
    start: str = "202612151400",
    minutes: int = 30,
    status: str = "Booked",
    pid_segment: str | None = None,
    practitioner: str = "1234567893^DOCTOR^DANA^^^DR^^^NPI",
    location: str = "CLINIC1^^^NORTHCLINIC^^^^^North Clinic Main",
    reason: str = "^Blood pressure follow-up",
    appointment_type: str = "FOLLOWUP^Follow-up^HL70277",
    **header,
) -> str:
    """SIU^S12 (new), S13 (reschedule), S14 (modify), S15 (cancel), S26 (no-show)."""
    segments = [
        msh(f"SIU^{trigger}^SIU_S12", control_id, **header),
        f"SCH|{appointment_id}^PMSYS|{appointment_id}^PMSYS|||{appointment_id}|"
        f"OFFICE^Office visit^HL70276|{reason}|{appointment_type}|{minutes}|min|"
        f"^^{minutes}^{start}||||||||||||||{status}",
        f"TQ1|1||||||{start}||R",
        pid_segment if pid_segment is not None else pid(),
        "RGS|1|A",
        f"AIS|1|A|OFFICE^Office visit|{start}|||{minutes}|min",
        f"AIP|1|A|{practitioner}|D^Doctor",
        f"AIL|1|A|{location}",
    ]
    return "\r".join(segments) + "\r"
