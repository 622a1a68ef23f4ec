"""The one cleaner of education bodies: staff write rich text, patients read it without signing in.

nh3 (Ammonia) keeps an allow-list of tags and attributes and drops everything else: scripts and
styles with their content, event handlers (onclick), `javascript:` and `data:` URLs. Links keep
http(s) and mailto only and open nothing with the page's privileges (rel="noopener noreferrer").
"""

from __future__ import annotations

import nh3

ALLOWED_TAGS = frozenset(
    {"p", "br", "h2", "h3", "h4", "strong", "em", "b", "i", "u", "ul", "ol", "li", "a", "blockquote", "hr"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"https", "http", "mailto"})


def sanitize_html(html: str) -> str:
    """The body with only the allowed markup left (text content kept, dangerous content dropped)."""
    return nh3.clean(
        html or "",
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    ).strip()
