"""Charts drawn on the server as inline SVG: no script, no CDN, nothing the CSP has to allow.

Each chart is a `Chart`: a title, a one-sentence reading, the SVG, and the rows of a data table
(for screen readers, printing and anyone who would rather read numbers). Hidden (suppressed)
values are drawn as a hatched gap and read "<11" in the table, never as a bar of guessed height.
Colours come from classes in static/css/app.css (presentation attributes only, no style="").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from analytics.suppression import HIDDEN

Value = float | None  # None: hidden (suppressed) or no data


@dataclass
class Chart:
    title: str
    reading: str
    svg: SafeString
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    slug: str = ""
    notes: list[str] = field(default_factory=list)


def _close(parts: list[SafeString]) -> SafeString:
    """The SVG: its opening tag and elements (each built by format_html, so escaped), closed."""
    return format_html("{}</svg>", format_html_join("", "{}", ((part,) for part in parts)))


def _n(number: float) -> str:
    """A coordinate: format_html escapes its arguments to strings, so numbers are formatted first."""
    return f"{number:.1f}"


def _fmt(value: Value, unit: str) -> str:
    if value is None:
        return HIDDEN
    if unit == "%":
        return f"{value * 100:.0f} %"
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else f"{value:.0f}"


def bar_chart(
    title: str,
    reading: str,
    items: Sequence[tuple[str, Value]],
    *,
    unit: str = "%",
    top: float | None = None,
    slug: str = "",
) -> Chart:
    """Horizontal bars, one per (label, value)."""
    width, label_w, bar_h, gap = 640, 200, 22, 8
    values = [v for _, v in items if v is not None]
    scale_top = top if top is not None else (max(values) if values else 1.0) or 1.0
    height = max(1, len(items)) * (bar_h + gap) + gap
    parts = [
        format_html(
            '<svg class="chart chart-bar" viewBox="0 0 {} {}" role="img" aria-label="{}"'
            ' preserveAspectRatio="xMinYMin meet">',
            width,
            height,
            title,
        )
    ]
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        parts.append(
            format_html(
                '<text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text>', label_w - 8, y + 16, label
            )
        )
        if value is None:
            parts.append(
                format_html('<rect class="chart-hidden" x="{}" y="{}" width="60" height="{}"/>', label_w, y, bar_h)
            )
            parts.append(format_html('<text class="chart-value" x="{}" y="{}">{}</text>', label_w + 66, y + 16, HIDDEN))
            continue
        length = max(1.0, (width - label_w - 70) * min(1.0, value / scale_top))
        parts.append(
            format_html(
                '<rect class="chart-bar-fill" x="{}" y="{}" width="{}" height="{}"/>', label_w, y, _n(length), bar_h
            )
        )
        parts.append(
            format_html(
                '<text class="chart-value" x="{}" y="{}">{}</text>', _n(label_w + length + 6), y + 16, _fmt(value, unit)
            )
        )
    rows = [[label, _fmt(value, unit)] for label, value in items]
    return Chart(title, reading, _close(parts), ["", title], rows, slug=slug)


def line_chart(
    title: str,
    reading: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Value]]],
    *,
    unit: str = "%",
    slug: str = "",
) -> Chart:
    """One or more lines over the same x labels (weeks, months); gaps where a value is hidden."""
    width, height, left, bottom, top_pad = 640, 240, 48, 36, 12
    values = [v for _, vs in series for v in vs if v is not None]
    top = max(values) if values else 1.0
    top = top * 1.15 or 1.0
    n = max(1, len(x_labels) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (width - left - 12) * i / n
        y = top_pad + (height - bottom - top_pad) * (1 - v / top)
        return x, y

    parts = [
        format_html(
            '<svg class="chart chart-line" viewBox="0 0 {} {}" role="img" aria-label="{}">', width, height, title
        ),
        format_html(
            '<line class="chart-axis" x1="{}" y1="{}" x2="{}" y2="{}"/>',
            left,
            height - bottom,
            width - 12,
            height - bottom,
        ),
    ]
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        _, y = xy(0, v)
        parts.append(
            format_html(
                '<text class="chart-tick" x="{}" y="{}" text-anchor="end">{}</text>', left - 6, _n(y + 4), _fmt(v, unit)
            )
        )
    step = max(1, len(x_labels) // 8)
    shown = [i for i in range(len(x_labels)) if i % step == 0]
    if x_labels and shown[-1] != len(x_labels) - 1:
        # The last label always shows; the regular one before it gives way if they would touch.
        if len(x_labels) - 1 - shown[-1] < max(2, step // 2 + 1):
            shown.pop()
        shown.append(len(x_labels) - 1)
    for i in shown:
        x, _ = xy(i, 0)
        parts.append(
            format_html(
                '<text class="chart-tick" x="{}" y="{}" text-anchor="middle">{}</text>', _n(x), height - 12, x_labels[i]
            )
        )
    for s, (name, vs) in enumerate(series):
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, point in enumerate(vs):
            if point is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            x, y = xy(i, point)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                format_html('<circle class="chart-dot chart-series-{}" cx="{}" cy="{}" r="3"/>', s, _n(x), _n(y))
            )
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) > 1:
                parts.append(
                    format_html('<polyline class="chart-series chart-series-{}" points="{}"/>', s, " ".join(seg))
                )
        parts.append(
            format_html(
                '<text class="chart-legend chart-series-{}" x="{}" y="{}">{}</text>',
                s,
                left + 8 + 160 * s,
                top_pad + 4,
                name,
            )
        )
    headers = ["", *[name for name, _ in series]]
    rows = [[label, *[_fmt(vs[i], unit) for _, vs in series]] for i, label in enumerate(x_labels)]
    return Chart(title, reading, _close(parts), headers, rows, slug=slug)


def heatmap(
    title: str,
    reading: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: Sequence[Sequence[Value]],
    *,
    unit: str = "%",
    slug: str = "",
) -> Chart:
    """A grid (e.g. weekday × hour), darker where the value is higher; hidden cells hatched."""
    cell_w, cell_h, left, top_pad = 34, 26, 48, 22
    width = left + cell_w * len(col_labels) + 4
    height = top_pad + cell_h * len(row_labels) + 4
    flat = [v for row in values for v in row if v is not None]
    top = max(flat) if flat else 1.0
    parts = [
        format_html(
            '<svg class="chart chart-heat" viewBox="0 0 {} {}" role="img" aria-label="{}">', width, height, title
        )
    ]
    for j, label in enumerate(col_labels):
        parts.append(
            format_html(
                '<text class="chart-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                left + j * cell_w + cell_w // 2,
                14,
                label,
            )
        )
    for i, label in enumerate(row_labels):
        y = top_pad + i * cell_h
        parts.append(
            format_html('<text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text>', left - 6, y + 17, label)
        )
        for j, v in enumerate(values[i]):
            x = left + j * cell_w
            if v is None:
                parts.append(
                    format_html(
                        '<rect class="chart-hidden" x="{}" y="{}" width="{}" height="{}">'
                        "<title>{} {}: {}</title></rect>",
                        x,
                        y,
                        cell_w - 2,
                        cell_h - 2,
                        label,
                        col_labels[j],
                        HIDDEN,
                    )
                )
                continue
            level = min(5, int(5 * v / top)) if top else 0
            parts.append(
                format_html(
                    '<rect class="chart-heat-{}" x="{}" y="{}" width="{}" height="{}"><title>{} {}: {}</title></rect>',
                    level,
                    x,
                    y,
                    cell_w - 2,
                    cell_h - 2,
                    label,
                    col_labels[j],
                    _fmt(v, unit),
                )
            )
    headers = ["", *col_labels]
    rows = [[label, *[_fmt(v, unit) for v in values[i]]] for i, label in enumerate(row_labels)]
    return Chart(title, reading, _close(parts), headers, rows, slug=slug)


def trend_reading(what: str, labels: Sequence[str], values: Sequence[Value], *, unit: str = "%") -> str:
    """'No-show rate fell from 14 % to 9 % since March 2026.' from the first and last shown values."""
    shown = [(label, v) for label, v in zip(labels, values, strict=True) if v is not None]
    if len(shown) < 2:
        return f"Not enough data to show a trend in {what.lower()}."
    (first_label, first), (_, last) = shown[0], shown[-1]
    a, b = _fmt(first, unit), _fmt(last, unit)
    if a == b:
        return f"{what} held at {b} since {first_label}."
    verb = "rose" if last > first else "fell"
    return f"{what} {verb} from {a} to {b} since {first_label}."


def escape_label(text: str) -> str:
    return str(escape(text))
