"""axe-core accessibility checks for Playwright pages.

axe-core 4.14.1 (MPL-2.0, Deque Systems) is vendored under tests/vendor/ as its published
axe.min.js, unmodified (its licence header is in the file): tests use no network beyond loopback.
Its SHA-256 is pinned here; to upgrade, `npm pack axe-core@<version>`, copy package/axe.min.js
to tests/vendor/axe-core-<version>.min.js, and update AXE_VERSION and AXE_SHA256.

    from tests.axe import axe_violations
    assert axe_violations(page) == []
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
SCRIPT = Path(__file__).resolve().parent / "vendor" / f"axe-core-{AXE_VERSION}.min.js"
# WCAG 2.1 A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@cache
def axe_source() -> str:
    """The text of the vendored axe.min.js, checked against its pinned hash."""
    data = SCRIPT.read_bytes()
    if hashlib.sha256(data).hexdigest() != AXE_SHA256:
        raise AssertionError(f"{SCRIPT.name} does not match its pinned SHA-256")
    return data.decode()


def axe_violations(page: Any, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """axe's violations on the page as it is now, one line each (rule, impact, first targets).

    The script is evaluated in the page (not added as a <script>: the CSP allows no inline script)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    context = {"exclude": [[selector] for selector in exclude]} if exclude else None
    results = page.evaluate(
        "([context, tags]) => axe.run(context || document, {runOnly: {type: 'tag', values: tags}})",
        [context, AXE_TAGS],
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in results["violations"]
    ]
