"""Real Chromium through Python Playwright (Debian's /usr/bin/chromium; no browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `.ci/run` installs Debian's chromium package.")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A tab in a fresh context. Every page the test's tab loads is checked with axe-core when the
    test has passed (issue #11: 0 violations on every page the flows visit): each distinct URL is
    opened again in a second tab of the same session and checked as loaded. Pages reached only by
    htmx swaps are checked where a test calls `axe_violations` itself."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    visited: list[str] = []

    def loaded(frame: Any) -> None:
        if frame.parent_frame is None and frame.url.startswith("http") and frame.url not in visited:
            visited.append(frame.url)

    tab.on("framenavigated", loaded)
    yield tab
    try:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.passed and visited:
            found = _axe_on_every_page(context, visited)
            assert found == {}, f"axe-core violations on the pages this flow visited: {found}"
    finally:
        context.close()


def _axe_on_every_page(context: Any, urls: list[str]) -> dict[str, list[str]]:
    from tests.axe import axe_violations

    checker = context.new_page()
    found: dict[str, list[str]] = {}
    for url in urls:
        checker.goto(url)
        violations = axe_violations(checker)
        if violations:
            found[url] = violations
    return found
