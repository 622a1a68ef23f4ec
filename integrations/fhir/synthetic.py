"""Synthetic, Synthea-shaped FHIR R4 transaction bundles (for tests, the bench and demos; no real data).

One bundle per patient, like Synthea's output: the patient first, then practitioners and an
organization, then encounters with their observations (vitals incl. blood-pressure components,
labs, surveys we skip), conditions, medication requests, allergies, immunizations, procedures and
a care plan. References are urn:uuid fullUrls, as Synthea writes them.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

GIVEN = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hugo", "Ines", "Jae", "Kofi", "Lena"]
FAMILY = ["Okafor", "Novak", "Silva", "Tanaka", "Walsh", "Haddad", "Ivanova", "Moreau", "Berg", "Costa"]
CONDITIONS = [
    ("44054006", "Diabetes mellitus type 2"),
    ("38341003", "Hypertension"),
    ("195662009", "Acute viral pharyngitis"),
    ("10509002", "Acute bronchitis"),
    ("271737000", "Anemia"),
]
MEDS = [("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"), ("314076", "lisinopril 10 MG")]
VACCINES = [("140", "Influenza, seasonal, injectable, preservative free"), ("08", "Hep B, adolescent or pediatric")]
LABS: list[tuple[str, str, str, float, float]] = [
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 9.5),
    ("2339-0", "Glucose", "mg/dL", 70, 180),
]
VITALS: list[tuple[str, str, str, float, float]] = [
    ("29463-7", "Body Weight", "kg", 55, 110),
    ("8867-4", "Heart rate", "/min", 55, 100),
]
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _obs(
    rng: random.Random,
    patient: str,
    encounter: str,
    when: datetime,
    code: str,
    display: str,
    unit: str,
    low: float,
    high: float,
    category: str,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": _id(rng),
        "status": "final",
        "category": [{"coding": [{"system": CAT, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": f"urn:uuid:{patient}"},
        "encounter": {"reference": f"urn:uuid:{encounter}"},
        "effectiveDateTime": when.isoformat(),
        "issued": when.isoformat(),
        "valueQuantity": {
            "value": round(rng.uniform(low, high), 1),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def synthea_bundle(
    seed: int = 0, *, encounters: int = 20, observations_per_encounter: int = 8, mrn: str | None = None
) -> dict[str, Any]:
    """One patient's transaction bundle: about encounters * (observations_per_encounter + 2) resources."""
    rng = random.Random(seed)
    patient_id = _id(rng)
    practitioner_id, organization_id = _id(rng), _id(rng)
    birth = datetime(1940, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 60 * 365))
    entries = [
        _entry(
            {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [
                    {"system": "https://github.com/synthetichealth/synthea", "value": patient_id},
                    {
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "http://hospital.smarthealthit.org",
                        "value": mrn or f"SYN-{seed:07d}",
                    },
                ],
                "name": [
                    {
                        "use": "official",
                        "family": rng.choice(FAMILY) + str(seed % 1000),
                        "given": [rng.choice(GIVEN)],
                        "prefix": ["Mx."],
                    }
                ],
                "telecom": [
                    {
                        "system": "phone",
                        "value": f"555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                        "use": "home",
                    }
                ],
                "gender": rng.choice(["male", "female"]),
                "birthDate": birth.date().isoformat(),
                "address": [
                    {
                        "line": [f"{rng.randrange(1, 999)} Synthetic Way"],
                        "city": "Springfield",
                        "state": "MA",
                        "postalCode": "01101",
                        "country": "US",
                    }
                ],
            }
        ),
        _entry(
            {
                "resourceType": "Organization",
                "id": organization_id,
                "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": organization_id}],
                "name": "Synthetic Hospital",
            }
        ),
        _entry(
            {
                "resourceType": "Practitioner",
                "id": practitioner_id,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": f"99999{seed % 100000:05d}"}],
                "name": [{"family": "Example", "given": ["Pat"], "prefix": ["Dr."]}],
            }
        ),
    ]
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for n in range(encounters):
        when = start + timedelta(days=30 * n, hours=rng.randrange(8, 17))
        encounter_id = _id(rng)
        entries.append(
            _entry(
                {
                    "resourceType": "Encounter",
                    "id": encounter_id,
                    "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": "http://snomed.info/sct",
                                    "code": "185349003",
                                    "display": "Encounter for check up",
                                }
                            ],
                            "text": "Encounter for check up",
                        }
                    ],
                    "subject": {"reference": f"urn:uuid:{patient_id}"},
                    "participant": [{"individual": {"reference": f"urn:uuid:{practitioner_id}"}}],
                    "period": {"start": when.isoformat(), "end": (when + timedelta(minutes=30)).isoformat()},
                    "serviceProvider": {"reference": f"urn:uuid:{organization_id}"},
                }
            )
        )
        for k in range(observations_per_encounter):
            kind = k % 4
            if kind == 0:
                entries.append(
                    _entry(
                        {
                            "resourceType": "Observation",
                            "id": _id(rng),
                            "status": "final",
                            "category": [{"coding": [{"system": CAT, "code": "vital-signs"}]}],
                            "code": {
                                "coding": [
                                    {"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}
                                ],
                                "text": "Blood pressure panel",
                            },
                            "subject": {"reference": f"urn:uuid:{patient_id}"},
                            "encounter": {"reference": f"urn:uuid:{encounter_id}"},
                            "effectiveDateTime": when.isoformat(),
                            "component": [
                                {
                                    "code": {
                                        "coding": [
                                            {
                                                "system": "http://loinc.org",
                                                "code": "8480-6",
                                                "display": "Systolic blood pressure",
                                            }
                                        ]
                                    },
                                    "valueQuantity": {
                                        "value": rng.randrange(100, 170),
                                        "unit": "mm[Hg]",
                                        "system": "http://unitsofmeasure.org",
                                        "code": "mm[Hg]",
                                    },
                                },
                                {
                                    "code": {
                                        "coding": [
                                            {
                                                "system": "http://loinc.org",
                                                "code": "8462-4",
                                                "display": "Diastolic blood pressure",
                                            }
                                        ]
                                    },
                                    "valueQuantity": {
                                        "value": rng.randrange(60, 100),
                                        "unit": "mm[Hg]",
                                        "system": "http://unitsofmeasure.org",
                                        "code": "mm[Hg]",
                                    },
                                },
                            ],
                        }
                    )
                )
            elif kind == 1:
                code, display, unit, low, high = rng.choice(VITALS)
                entries.append(
                    _entry(_obs(rng, patient_id, encounter_id, when, code, display, unit, low, high, "vital-signs"))
                )
            elif kind == 2:
                code, display, unit, low, high = rng.choice(LABS)
                entries.append(
                    _entry(_obs(rng, patient_id, encounter_id, when, code, display, unit, low, high, "laboratory"))
                )
            else:  # a survey answer: a kept type we skip
                entries.append(
                    _entry(
                        _obs(
                            rng,
                            patient_id,
                            encounter_id,
                            when,
                            "72166-2",
                            "Tobacco smoking status",
                            "{score}",
                            0,
                            1,
                            "survey",
                        )
                    )
                )
        if n % 3 == 0:
            code, display = rng.choice(CONDITIONS)
            entries.append(
                _entry(
                    {
                        "resourceType": "Condition",
                        "id": _id(rng),
                        "clinicalStatus": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                    "code": rng.choice(["active", "resolved"]),
                                }
                            ]
                        },
                        "code": {
                            "coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}],
                            "text": display,
                        },
                        "subject": {"reference": f"urn:uuid:{patient_id}"},
                        "encounter": {"reference": f"urn:uuid:{encounter_id}"},
                        "onsetDateTime": when.isoformat(),
                    }
                )
            )
        if n % 4 == 0:
            code, display = rng.choice(MEDS)
            entries.append(
                _entry(
                    {
                        "resourceType": "MedicationRequest",
                        "id": _id(rng),
                        "status": rng.choice(["active", "stopped"]),
                        "intent": "order",
                        "medicationCodeableConcept": {
                            "coding": [
                                {
                                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "code": code,
                                    "display": display,
                                }
                            ],
                            "text": display,
                        },
                        "subject": {"reference": f"urn:uuid:{patient_id}"},
                        "encounter": {"reference": f"urn:uuid:{encounter_id}"},
                        "authoredOn": when.isoformat(),
                        "requester": {"reference": f"urn:uuid:{practitioner_id}"},
                        "dosageInstruction": [{"text": "1 tablet daily"}],
                    }
                )
            )
        if n % 5 == 0:
            code, display = rng.choice(VACCINES)
            entries.append(
                _entry(
                    {
                        "resourceType": "Immunization",
                        "id": _id(rng),
                        "status": "completed",
                        "vaccineCode": {
                            "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": code, "display": display}],
                            "text": display,
                        },
                        "patient": {"reference": f"urn:uuid:{patient_id}"},
                        "encounter": {"reference": f"urn:uuid:{encounter_id}"},
                        "occurrenceDateTime": when.isoformat(),
                        "primarySource": True,
                    }
                )
            )
        if n % 6 == 0:
            entries.append(
                _entry(
                    {
                        "resourceType": "Procedure",
                        "id": _id(rng),
                        "status": "completed",
                        "code": {
                            "coding": [
                                {
                                    "system": "http://snomed.info/sct",
                                    "code": "430193006",
                                    "display": "Medication Reconciliation (procedure)",
                                }
                            ]
                        },
                        "subject": {"reference": f"urn:uuid:{patient_id}"},
                        "encounter": {"reference": f"urn:uuid:{encounter_id}"},
                        "performedPeriod": {
                            "start": when.isoformat(),
                            "end": (when + timedelta(minutes=15)).isoformat(),
                        },
                    }
                )
            )
    entries.append(
        _entry(
            {
                "resourceType": "AllergyIntolerance",
                "id": _id(rng),
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "type": "allergy",
                "category": ["food"],
                "criticality": "low",
                "code": {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": "91935009", "display": "Allergy to peanuts"}
                    ],
                    "text": "Allergy to peanuts",
                },
                "patient": {"reference": f"urn:uuid:{patient_id}"},
                "reaction": [{"manifestation": [{"text": "Hives"}]}],
            }
        )
    )
    entries.append(
        _entry(
            {
                "resourceType": "CarePlan",
                "id": _id(rng),
                "status": "active",
                "intent": "order",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "698360004",
                                "display": "Diabetes self management plan",
                            }
                        ]
                    }
                ],
                "subject": {"reference": f"urn:uuid:{patient_id}"},
                "period": {"start": start.isoformat()},
                "activity": [{"detail": {"status": "in-progress", "code": {"text": "Diabetic diet"}}}],
            }
        )
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
