"""Small-cell suppression: no hidden value can be recomputed from what a table publishes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.stats import wilson
from analytics.suppression import HIDDEN, TOTAL, WITHHELD, Column, CountTable, RateColumn, determined

COLUMNS = [Column("yes", "Yes"), Column("no", "No"), Column("maybe", "Maybe")]


def _table(grid: list[list[int]]) -> CountTable:
    rows = [(f"r{i}", f"Row {i}") for i in range(len(grid))]
    counts = {(f"r{i}", c.key): v for i, row in enumerate(grid) for c, v in zip(COLUMNS, row, strict=True)}
    return CountTable("t", "Row", COLUMNS, rows, counts, rates=[RateColumn("yes_rate", "Yes", "yes")])


def test_a_lone_small_cell_takes_a_partner_in_its_row_and_column() -> None:
    # Row 0: 5 yes (small), 40 no, 30 maybe -> 75. Row 1: 20, 25, 35 -> 80. Totals 25 / 65 / 65 / 155.
    table = _table([[5, 40, 30], [20, 25, 35]])
    assert table.cell("r0", "yes") == HIDDEN
    # The row total 75 shows: 75 - 40 - 30 would be 5, so the smallest other cell of the row (30)
    # goes too; the column total 25 shows: 25 - 20 would be 5, so row 1's 20 goes too; then row 1
    # and the maybe column each have one hidden cell, and take one more (row 1's 25... and so on).
    assert table.cell("r0", "maybe") == WITHHELD
    assert table.cell("r1", "yes") == WITHHELD
    assert not determined(table.values, table.lines(), table.hidden)
    # Totals that hide nothing small still show.
    assert table.cell(TOTAL, TOTAL) == 155


def test_zero_and_large_counts_show_and_rates_need_both_counts() -> None:
    table = _table([[0, 40, 30], [20, 25, 35]])
    assert table.hidden == set()
    assert table.rate("r1", table.rates[0]) == (20 / 80, *wilson(20, 80))
    small = _table([[3, 40, 30], [20, 25, 35]])
    assert small.rate("r0", small.rates[0]) is None  # 3 of 73: hidden count, hidden rate
    # The totals row hides nothing: 23 yes of 153 (partners were found inside the rows and columns).
    assert small.rate(TOTAL, small.rates[0]) == (23 / 153, *wilson(23, 153))


def test_csv_carries_the_same_cells_as_the_page() -> None:
    table = _table([[5, 40, 30], [20, 25, 35]])
    rows = list(table.csv_rows())
    assert rows[0][:5] == ["Row", "Yes", "No", "Maybe", "Total"]
    for line, shown in zip(rows[1:], table.display_rows(), strict=True):
        assert line[1:4] == shown["cells"]
        assert line[4] == shown["total"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=40), min_size=3, max_size=3), min_size=1, max_size=6))
def test_no_hidden_value_follows_from_the_published_ones(grid: list[list[int]]) -> None:
    table = _table(grid)
    # Every count from 1 to 10 is hidden...
    for key, value in table.values.items():
        if 0 < value < 11:
            assert key in table.hidden
    # ...and the attacker, solving every published row and column sum, recovers none of them.
    assert determined(table.values, table.lines(), table.hidden) == set()
    # A rate shows only when both of its counts do.
    for row in table.display_rows():
        rate = row["rates"][0]
        if rate is not None:
            assert isinstance(row["cells"][0], int) and isinstance(row["total"], int)
