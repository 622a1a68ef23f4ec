"""axe-core (vendored from the npm registry: tests/vendor/axe-4.14.1.min.js, MPL-2.0) run in a
Playwright page: the accessibility violations a page has, to assert there are none.

The script is evaluated through the DevTools protocol, not added as a <script> tag: the page's CSP
(script-src 'self') would refuse an inline script, and the page must be tested under its real CSP.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js"

_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")),
  }));
}"""


@cache
def _source() -> str:
    return AXE_SOURCE.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The WCAG violations axe-core finds on the page as it is now (an empty list when none)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(_source())
    violations: list[dict[str, Any]] = page.evaluate(_RUN)
    return violations
