"""Rates as the pages print them: a percentage with its 95 % Wilson interval, or "<11"."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from analytics.stats import percent
from analytics.suppression import HIDDEN

register = template.Library()


@register.filter
def index(sequence: Any, position: int) -> Any:
    try:
        return sequence[position]
    except (IndexError, TypeError, KeyError):
        return None


@register.simple_tag
def rate_value(rate: Any) -> str:
    """A rate tuple (value, low, high) or a bare float, as '12 %'; None (hidden) as '<11'."""
    if rate is None:
        return HIDDEN
    value = rate[0] if isinstance(rate, tuple) else rate
    return percent(value)


@register.simple_tag
def rate_cell(rate: Any) -> str:
    if rate is None:
        return format_html('<span class="suppressed">{}</span>', HIDDEN)
    value, low, high = rate
    if low is None:
        return percent(value)
    return format_html('{} <span class="ci">({}–{})</span>', percent(value), percent(low), percent(high))


@register.simple_tag
def nps_value(score: float | None) -> str:
    """An NPS as '+25' / '−10'; None (hidden or no answers) as '<11'."""
    if score is None:
        return HIDDEN
    return f"{score:+.0f}".replace("-", "−")


@register.simple_tag
def mean_value(mean: float | None) -> str:
    """A mean score with one decimal; None (too few answers, or hidden) as '<11'."""
    return HIDDEN if mean is None else f"{mean:.1f}"
