"""Pagination that stays fast on deep pages of wide, encrypted rows ("deferred join").

OFFSET on the full rows reads and discards every earlier row (kilobytes of ciphertext each); here
the page's primary keys come from an index-only scan and only those rows are fetched, in order.
"""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet


def paginate_by_pk(queryset: QuerySet, page_number: int | str | None, per_page: int) -> Page:
    """Like Paginator(queryset, per_page).get_page(page_number), with two cheap queries and one fetch."""
    page = Paginator(queryset.values_list("pk", flat=True), per_page).get_page(page_number)
    ids = list(page.object_list)
    rows = {obj.pk: obj for obj in queryset.filter(pk__in=ids)}
    page.object_list = [rows[pk] for pk in ids if pk in rows]
    return page
