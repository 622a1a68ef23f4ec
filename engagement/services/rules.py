"""Templates and rules: saving them (lint first), and materializing a rule's messages through the
table from rule kind to materializer (engagement/services/materializers.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engagement import templating
from engagement.models import MessageTemplate, Rule, RuleKind
from engagement.services.materializers import MATERIALIZERS, cohort_patient_ids, risk_params_problem
from engagement.tasks import rule_materialize_task


def template_save(
    *,
    template: MessageTemplate | None = None,
    key: str,
    language: str,
    channel: str,
    body: str,
    subject: str = "",
    is_active: bool = True,
) -> MessageTemplate:
    """Create or update a template; refuses one the lint rejects (sensitive or unknown variables)."""
    problems = templating.lint(body=body, channel=channel, subject=subject)
    if problems:
        raise ValidationError({"body": problems})
    template = template or MessageTemplate()
    template.key, template.language, template.channel = key, language, channel
    template.body, template.subject, template.is_active = body, subject, is_active
    template.full_clean()
    template.save()
    return template


def rule_save(*, rule: Rule | None = None, **fields: Any) -> Rule:
    """Create or update a rule, then materialize its messages (after commit, in the background)."""
    rule = rule or Rule()
    for name, value in fields.items():
        setattr(rule, name, value)
    if rule.kind == RuleKind.APPOINTMENT_REMINDER and not rule.offsets_hours:
        raise ValidationError({"offsets_hours": "Give at least one offset, e.g. 72, 24, 2."})
    if rule.kind == RuleKind.APPOINTMENT_REMINDER and (problem := risk_params_problem(rule.params)):
        raise ValidationError({"params": problem})
    if rule.kind == RuleKind.CAMPAIGN and rule.params.get("send_on"):
        try:
            date.fromisoformat(str(rule.params["send_on"]))
        except ValueError:
            raise ValidationError({"params": "send_on must be a date such as 2026-12-01."}) from None
    if rule.kind == RuleKind.SURVEY:
        for name, low, high in (("delay_hours", 0, 24 * 7), ("max_age_days", 1, 30)):
            value = rule.params.get(name)
            if value is not None and not (isinstance(value, int) and low <= value <= high):
                raise ValidationError({"params": f"{name} must be a whole number from {low} to {high}."})
    # Another organization's cohort is not found (the resolver reads under the current one).
    cohort_id = rule.params.get("cohort_id") if rule.kind == RuleKind.CAMPAIGN else None
    if cohort_id is not None and cohort_patient_ids(cohort_id) is None:
        raise ValidationError({"params": "cohort_id must be a saved cohort of this organization."})
    rule.full_clean()
    rule.save()
    if rule.is_active:
        organization_id, rule_id = rule.organization_id, rule.pk
        transaction.on_commit(lambda: rule_materialize_task.delay(organization_id, rule_id))
    return rule


def rule_materialize(*, rule: Rule, now: datetime | None = None) -> int:
    """Create the outbox rows a rule calls for now (idempotent). Returns how many were offered.

    Kinds without a materializer are enqueued by their services (care plan, results) instead."""
    materializer = MATERIALIZERS.get(rule.kind)
    if not rule.is_active or materializer is None:
        return 0
    return materializer(rule, now or timezone.now())
