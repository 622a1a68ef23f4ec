"""CSV exports: the very cells the page shows (suppressed ones included as "<11"), nothing more."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse
from django.utils.text import slugify


def csv_response(rows: Iterable[list[Any]], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(filename) or "export"}.csv"'
    writer = csv.writer(response)
    for row in rows:
        # A leading =, +, - or @ would be a formula in a spreadsheet: quote it as text.
        writer.writerow([f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    return response


def table_csv_rows(chart_or_table: Any) -> Iterable[list[Any]]:
    """Rows of a CountTable (`csv_rows`) or a Chart's data table (headers + rows)."""
    if hasattr(chart_or_table, "csv_rows"):
        yield from chart_or_table.csv_rows()
        return
    yield list(chart_or_table.headers)
    for row in chart_or_table.rows:
        yield list(row)
