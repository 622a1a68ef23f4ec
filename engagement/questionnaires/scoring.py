"""A definition's questions and answer options, and the scoring of a set of answers.

Answers are `{link id: answer code}`. A total is the sum of the chosen options' `ordinalValue`
(0-3 per PHQ-9 and GAD-7 item), computed only when every scored question is answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engagement.questionnaires.definitions import ORDINAL


@dataclass(frozen=True)
class Option:
    system: str
    code: str
    display: str
    score: int | None


@dataclass(frozen=True)
class Question:
    number: int
    link_id: str
    text: str
    required: bool
    options: tuple[Option, ...]

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)

    @property
    def scored(self) -> bool:
        return any(o.score is not None for o in self.options)


def _ordinal(option: Mapping[str, Any]) -> int | None:
    for extension in option.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == ORDINAL:
            try:
                return int(Decimal(str(extension.get("valueDecimal"))))
            except (InvalidOperation, ValueError):
                return None
    return None


def _walk(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for item in items:
        found.append(item)
        found.extend(_walk(item.get("item") or []))
    return found


def intro_texts(resource: Mapping[str, Any]) -> list[str]:
    """The definition's display items (the instructions shown above the questions)."""
    return [str(i.get("text") or "") for i in _walk(resource.get("item") or []) if i.get("type") == "display"]


def questions(resource: Mapping[str, Any]) -> list[Question]:
    """The choice questions of a definition (nested groups flattened), numbered from 1."""
    found: list[Question] = []
    for item in _walk(resource.get("item") or []):
        if item.get("type") not in ("choice", "coding") or not item.get("answerOption"):
            continue
        options = []
        for option in item.get("answerOption") or []:
            coding = option.get("valueCoding") or {}
            if coding.get("code"):
                options.append(
                    Option(
                        str(coding.get("system") or ""),
                        str(coding["code"]),
                        str(coding.get("display") or coding["code"]),
                        _ordinal(option),
                    )
                )
        if options:
            found.append(
                Question(
                    len(found) + 1,
                    str(item["linkId"]),
                    str(item.get("text") or ""),
                    bool(item.get("required")),
                    tuple(options),
                )
            )
    return found


@dataclass(frozen=True)
class Result:
    total: int | None
    band: str
    alert: bool


def band_of(total: int, bands: Sequence[Sequence[Any]]) -> str:
    for low, high, label in bands:
        if int(low) <= total <= int(high):
            return str(label)
    return ""


def score(
    resource: Mapping[str, Any],
    answers: Mapping[str, str],
    *,
    bands: Sequence[Sequence[Any]] = (),
    alert_at: int | None = None,
    alert_items: Sequence[str] = (),
) -> Result:
    """The total (None when a scored question is unanswered or nothing is scored), its band, and
    whether the answers call for the care team now: a total at or above `alert_at`, or any answer
    scored above 0 to one of `alert_items` (counted even when the total is incomplete)."""
    total = 0
    complete = True
    scored = False
    alert = False
    for question in questions(resource):
        if not question.scored:
            continue
        scored = True
        option = question.option(answers.get(question.link_id, ""))
        if option is None or option.score is None:
            complete = False
            continue
        total += option.score
        if question.link_id in alert_items and option.score > 0:
            alert = True
    if not scored or not complete:
        return Result(None, "", alert)
    if alert_at is not None and total >= alert_at:
        alert = True
    return Result(total, band_of(total, bands), alert)
