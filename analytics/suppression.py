"""Small-cell suppression for every aggregate analysts see, on the page and in its CSV.

Primary: a count from 1 to 10 is shown as "<11" (SUPPRESS_BELOW; zero is shown, as in the CMS cell
size policy). A complementary cell is shown as "hidden" (it is not small: "<11" would be untrue).
Complementary: a table publishes its row and column totals, so one hidden cell in a
row could be recomputed as total minus the rest; wherever a line (a row or column with its total)
has exactly one hidden value, the next smallest value of that line is hidden too. Then a linear-
algebra check solves the published equations for every hidden value and hides more until none is
determined (`determined()` is what the tests use as the attacker). A rate is shown only when its
numerator and denominator both are: otherwise rate × denominator would give the count back.

Limit (documented): each table is protected on its own; two tables of one page over the same visits
grouped differently (by provider, by weekday) are not solved jointly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.stats import wilson

SUPPRESS_BELOW = 11
HIDDEN = "<11"  # a count from 1 to 10
WITHHELD = "hidden"  # a larger count withheld so that a total cannot give a small one away
TOTAL = "__total__"

Key = Hashable
Line = tuple[Key, Sequence[Key]]  # (the total, the members that sum to it)


def _matrix(values: dict[Key, int], lines: Sequence[Line], hidden: set[Key]) -> tuple[np.ndarray, list[Key]]:
    unknowns = sorted(hidden, key=repr)
    index = {k: i for i, k in enumerate(unknowns)}
    rows = []
    for total, members in lines:
        row = np.zeros(len(unknowns))
        touched = False
        for k in members:
            if k in index:
                row[index[k]] += 1
                touched = True
        if total in index:
            row[index[total]] -= 1
            touched = True
        if touched:
            rows.append(row)
    matrix = np.array(rows) if rows else np.zeros((0, len(unknowns)))
    return matrix, unknowns


def determined(values: dict[Key, int], lines: Sequence[Line], hidden: set[Key]) -> set[Key]:
    """The hidden keys whose value follows exactly from the published ones and the lines' sums.

    The hidden values solve A x = b (one row per line that touches them). x_i is determined exactly
    when every solution agrees on it, i.e. when the null space of A is zero in coordinate i: one
    SVD of A gives that basis, instead of one rank test per hidden key.
    """
    if not hidden:
        return set()
    matrix, unknowns = _matrix(values, lines, hidden)
    if matrix.shape[0] == 0:
        return set()
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    tolerance = max(matrix.shape) * np.finfo(float).eps * (singular[0] if singular.size else 0.0)
    rank = int((singular > tolerance).sum())
    null_space = vt[rank:]  # rows spanning {x : A x = 0}
    if null_space.shape[0] == 0:
        return set(unknowns)
    free = np.abs(null_space).max(axis=0) > 1e-9
    return {key for key, is_free in zip(unknowns, free, strict=True) if not is_free}


def _hide_partner(values: dict[Key, int], line: Line, hidden: set[Key], exclude: Key | None = None) -> bool:
    total, members = line
    candidates = [k for k in members if k not in hidden and k != exclude]
    candidates.sort(key=lambda k: (values[k] == 0, values[k], repr(k)))
    if candidates:
        hidden.add(candidates[0])
        return True
    if total not in hidden:
        hidden.add(total)
        return True
    return False


def suppress(values: dict[Key, int], lines: Sequence[Line], threshold: int = SUPPRESS_BELOW) -> set[Key]:
    """The keys to hide: primary (0 < value < threshold) plus the complementary ones."""
    hidden = {k for k, v in values.items() if 0 < v < threshold}
    while True:
        changed = True
        while changed:
            changed = False
            for total, members in lines:
                if sum(k in hidden for k in (total, *members)) == 1:
                    changed |= _hide_partner(values, (total, members), hidden)
        leaks = determined(values, lines, hidden)
        if not leaks:
            return hidden
        key = sorted(leaks, key=repr)[0]
        line = next((ln for ln in lines if key == ln[0] or key in ln[1]), None)
        if line is None or not _hide_partner(values, line, hidden, exclude=key):
            # Nothing left to hide in its lines: hide every member of every line it is in.
            for total, members in lines:
                if key == total or key in members:
                    hidden.update([total, *members])


@dataclass(frozen=True)
class Column:
    key: str
    label: str


@dataclass(frozen=True)
class RateColumn:
    key: str
    label: str
    numerator: str
    denominator: str | tuple[str, ...] = TOTAL  # a count column's key, the row total, or keys summed
    interval: bool = True


@dataclass
class CountTable:
    """Rows × count columns (a partition of each row's total), with totals and derived rates.

    `cell(row, col)`, `total(row)` give display values: an int, or HIDDEN. Rates give (value, low,
    high) or None when hidden. `csv_rows()` is what the CSV export writes: the same cells.
    """

    title: str
    row_header: str
    columns: Sequence[Column]
    rows: Sequence[tuple[str, str]]  # (key, label)
    counts: dict[tuple[str, str], int]
    rates: Sequence[RateColumn] = ()
    total_label: str = "All"
    threshold: int = SUPPRESS_BELOW
    hidden: set[Key] = field(init=False)
    primary: set[Key] = field(init=False)
    values: dict[Key, int] = field(init=False)

    def __post_init__(self) -> None:
        values: dict[Key, int] = {}
        row_keys = [r for r, _ in self.rows]
        col_keys = [c.key for c in self.columns]
        for r in row_keys:
            for c in col_keys:
                values[(r, c)] = int(self.counts.get((r, c), 0))
            values[(r, TOTAL)] = sum(values[(r, c)] for c in col_keys)
        for c in [*col_keys, TOTAL]:
            values[(TOTAL, c)] = sum(values[(r, c)] for r in row_keys)
        self.values = values
        self.hidden = suppress(values, self.lines(), self.threshold)
        self.primary = {k for k in self.hidden if 0 < values[k] < self.threshold}

    def lines(self) -> list[Line]:
        row_keys = [r for r, _ in self.rows]
        col_keys = [c.key for c in self.columns]
        lines: list[Line] = []
        for r in [*row_keys, TOTAL]:
            lines.append(((r, TOTAL), [(r, c) for c in col_keys]))
        for c in [*col_keys, TOTAL]:
            lines.append(((TOTAL, c), [(r, c) for r in row_keys]))
        return lines

    def published(self) -> dict[Key, int]:
        return {k: v for k, v in self.values.items() if k not in self.hidden}

    def cell(self, row: str, col: str) -> int | str:
        key = (row, col)
        if key in self.primary:
            return HIDDEN
        return WITHHELD if key in self.hidden else self.values[key]

    def rate(self, row: str, spec: RateColumn) -> tuple[float, float | None, float | None] | None:
        num = (row, spec.numerator)
        parts = (
            [(row, key) for key in spec.denominator]
            if isinstance(spec.denominator, tuple)
            else [(row, spec.denominator)]
        )
        # A denominator summed from columns is shown only when each part is (else it gives one back).
        if num in self.hidden or any(part in self.hidden for part in parts):
            return None
        denominator = sum(self.values[part] for part in parts)
        if not denominator:
            return None
        interval = wilson(self.values[num], denominator) if spec.interval else None
        value = self.values[num] / denominator
        return (value, interval[0], interval[1]) if interval else (value, None, None)

    def display_rows(self) -> list[dict[str, Any]]:
        """Rows for the template: label, cells, total, rates; the totals row last."""
        out = []
        for key, label in [*self.rows, (TOTAL, self.total_label)]:
            out.append(
                {
                    "key": key,
                    "label": label,
                    "is_total": key == TOTAL,
                    "cells": [self.cell(key, c.key) for c in self.columns],
                    "total": self.cell(key, TOTAL),
                    "rates": [self.rate(key, spec) for spec in self.rates],
                }
            )
        return out

    def csv_rows(self) -> Iterable[list[Any]]:
        header = [self.row_header, *[c.label for c in self.columns], "Total"]
        for spec in self.rates:
            header += [f"{spec.label} (%)"] + (
                [f"{spec.label} 95% CI low", f"{spec.label} 95% CI high"] if spec.interval else []
            )
        yield header
        for row in self.display_rows():
            line: list[Any] = [row["label"], *row["cells"], row["total"]]
            for spec, rate in zip(self.rates, row["rates"], strict=True):
                cols = 3 if spec.interval else 1
                if rate is None:
                    line += [HIDDEN if cols == 1 else "suppressed"] + [""] * (cols - 1)
                else:
                    line += [f"{rate[0] * 100:.1f}"] + (
                        [f"{rate[1] * 100:.1f}", f"{rate[2] * 100:.1f}"] if spec.interval else []
                    )
            yield line
