"""The questionnaires every organization gets: PHQ-9, GAD-7 and a short medication-adherence check,
as FHIR R4 Questionnaire resources, with how each is scored.

PHQ-9 and GAD-7 (Spitzer, Kroenke, Williams; public domain, "no permission required to reproduce,
translate, display or distribute") carry their LOINC codes: the panel, each item, and the LOINC
answer list LL358-3 (Not at all 0, Several days 1, More than half the days 2, Nearly every day 3),
the score of each answer given by the R4 `ordinalValue` extension. The medication-adherence check
is HealthCRM's own three questions (the published scales with LOINC codes, e.g. MMAS-8, are
licensed), so its items and total use a local code system, not LOINC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
LOCAL_CODES = "https://healthcrm.example/fhir/CodeSystem/questionnaire"
CANONICAL_BASE = "https://healthcrm.example/fhir/Questionnaire/"

PHQ9_PANEL, PHQ9_TOTAL, PHQ9_ITEM9 = "44249-1", "44261-6", "44260-8"
GAD7_PANEL, GAD7_TOTAL = "69737-5", "70274-6"
ADHERENCE_TOTAL = "med-adherence-total"

FREQUENCY = [
    ("LA6568-5", "Not at all", 0),
    ("LA6569-3", "Several days", 1),
    ("LA6570-1", "More than half the days", 2),
    ("LA6571-9", "Nearly every day", 3),
]
DIFFICULTY = [
    ("LA6572-7", "Not difficult at all"),
    ("LA6573-5", "Somewhat difficult"),
    ("LA6575-0", "Very difficult"),
    ("LA6574-3", "Extremely difficult"),
]
TWO_WEEKS = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"


@dataclass(frozen=True)
class Scoring:
    """How a questionnaire is scored: the total's code, its bands, and when it alerts the care team.

    bands: (lowest, highest, label), covering every possible total. `alert_at`: a total at or above
    it opens an urgent task (the organization may change it); `alert_items`: link ids whose any
    answer scored above 0 opens one whatever the total (PHQ-9 item 9)."""

    total_system: str
    total_code: str
    total_display: str
    bands: tuple[tuple[int, int, str], ...]
    alert_at: int | None
    alert_items: tuple[str, ...] = ()


PHQ9_SCORING = Scoring(
    LOINC,
    PHQ9_TOTAL,
    "PHQ-9 total score",
    (
        (0, 4, "Minimal depression"),
        (5, 9, "Mild depression"),
        (10, 14, "Moderate depression"),
        (15, 19, "Moderately severe depression"),
        (20, 27, "Severe depression"),
    ),
    alert_at=10,
    alert_items=(PHQ9_ITEM9,),
)
GAD7_SCORING = Scoring(
    LOINC,
    GAD7_TOTAL,
    "GAD-7 total score",
    ((0, 4, "Minimal anxiety"), (5, 9, "Mild anxiety"), (10, 14, "Moderate anxiety"), (15, 21, "Severe anxiety")),
    alert_at=10,
)
ADHERENCE_SCORING = Scoring(
    LOCAL_CODES,
    ADHERENCE_TOTAL,
    "Medication adherence check score",
    ((0, 0, "Taking medicines as prescribed"), (1, 2, "Some missed doses"), (3, 6, "Low adherence")),
    alert_at=None,
)
# Scoring by the questionnaire's panel code: an imported PHQ-9 or GAD-7 is scored like ours.
SCORING_BY_PANEL: dict[str, Scoring] = {PHQ9_PANEL: PHQ9_SCORING, GAD7_PANEL: GAD7_SCORING}
# The codes of totals written as Observations: a FHIR import keeps survey observations with these.
SCORE_CODES = frozenset({PHQ9_TOTAL, GAD7_TOTAL, ADHERENCE_TOTAL})


def _option(system: str, code: str, display: str, score: int | None) -> dict[str, Any]:
    option: dict[str, Any] = {"valueCoding": {"system": system, "code": code, "display": display}}
    if score is not None:
        option["extension"] = [{"url": ORDINAL, "valueDecimal": score}]
    return option


def _item(code: str, text: str, *, system: str = LOINC, options: list[dict[str, Any]], required: bool = True) -> Any:
    return {
        "linkId": code,
        "code": [{"system": system, "code": code, "display": text}],
        "text": text,
        "type": "choice",
        "required": required,
        "answerOption": options,
    }


def _frequency() -> list[dict[str, Any]]:
    return [_option(LOINC, code, display, score) for code, display, score in FREQUENCY]


def _difficulty(code: str) -> dict[str, Any]:
    text = (
        "If you checked off any problems, how difficult have these problems made it for you to do your work, "
        "take care of things at home, or get along with other people?"
    )
    options = [_option(LOINC, c, d, None) for c, d in DIFFICULTY]
    return _item(code, text, options=options, required=False)


def phq9() -> dict[str, Any]:
    items = [
        ("44250-9", "Little interest or pleasure in doing things"),
        ("44255-8", "Feeling down, depressed, or hopeless"),
        ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
        ("44254-1", "Feeling tired or having little energy"),
        ("44251-7", "Poor appetite or overeating"),
        (
            "44258-2",
            "Feeling bad about yourself - or that you are a failure or have let yourself or your family down",
        ),
        ("44252-5", "Trouble concentrating on things, such as reading the newspaper or watching television"),
        (
            "44253-3",
            "Moving or speaking so slowly that other people could have noticed? Or the opposite - being so "
            "fidgety or restless that you have been moving around a lot more than usual",
        ),
        (PHQ9_ITEM9, "Thoughts that you would be better off dead or of hurting yourself in some way"),
    ]
    return {
        "resourceType": "Questionnaire",
        "url": CANONICAL_BASE + "phq-9",
        "version": "1",
        "name": "PHQ9",
        "title": "PHQ-9 quick depression assessment",
        "status": "active",
        "subjectType": ["Patient"],
        "code": [{"system": LOINC, "code": PHQ9_PANEL, "display": "PHQ-9 quick depression assessment panel"}],
        "item": [
            {"linkId": "intro", "type": "display", "text": TWO_WEEKS},
            *(_item(code, text, options=_frequency()) for code, text in items),
            _difficulty("69722-7"),
        ],
    }


def gad7() -> dict[str, Any]:
    items = [
        ("69725-0", "Feeling nervous, anxious, or on edge"),
        ("68509-9", "Not being able to stop or control worrying"),
        ("69733-4", "Worrying too much about different things"),
        ("69734-2", "Trouble relaxing"),
        ("69735-9", "Being so restless that it is hard to sit still"),
        ("69689-8", "Becoming easily annoyed or irritable"),
        ("69736-7", "Feeling afraid, as if something awful might happen"),
    ]
    return {
        "resourceType": "Questionnaire",
        "url": CANONICAL_BASE + "gad-7",
        "version": "1",
        "name": "GAD7",
        "title": "GAD-7 anxiety assessment",
        "status": "active",
        "subjectType": ["Patient"],
        "code": [{"system": LOINC, "code": GAD7_PANEL, "display": "Generalized anxiety disorder 7 item (GAD-7)"}],
        "item": [
            {"linkId": "intro", "type": "display", "text": TWO_WEEKS},
            *(_item(code, text, options=_frequency()) for code, text in items),
            _difficulty("69726-8"),
        ],
    }


def medication_adherence() -> dict[str, Any]:
    def local(code: str, display: str, score: int) -> dict[str, Any]:
        return _option(LOCAL_CODES, code, display, score)

    return {
        "resourceType": "Questionnaire",
        "url": CANONICAL_BASE + "medication-adherence",
        "version": "1",
        "name": "MedicationAdherence",
        "title": "Medication check",
        "status": "active",
        "subjectType": ["Patient"],
        "code": [{"system": LOCAL_CODES, "code": "med-adherence", "display": "Medication adherence check"}],
        "item": [
            _item(
                "med-missed-days",
                "In the past 7 days, on how many days did you miss a dose of your medicine?",
                system=LOCAL_CODES,
                options=[
                    local("missed-0", "None", 0),
                    local("missed-1", "1 day", 1),
                    local("missed-2-3", "2 or 3 days", 2),
                    local("missed-4", "4 days or more", 3),
                ],
            ),
            _item(
                "med-stopped",
                "In the past month, did you stop taking a medicine because you felt better or worse?",
                system=LOCAL_CODES,
                options=[local("stopped-no", "No", 0), local("stopped-yes", "Yes", 1)],
            ),
            _item(
                "med-refill",
                "In the past month, did you run out of a medicine before you could get a refill?",
                system=LOCAL_CODES,
                options=[
                    local("refill-no", "No", 0),
                    local("refill-once", "Once", 1),
                    local("refill-more", "More than once", 2),
                ],
            ),
        ],
    }


@dataclass(frozen=True)
class Default:
    key: str
    build: Any
    scoring: Scoring


DEFAULTS = (
    Default("phq-9", phq9, PHQ9_SCORING),
    Default("gad-7", gad7, GAD7_SCORING),
    Default("medication-adherence", medication_adherence, ADHERENCE_SCORING),
)
