"""axe-core accessibility checks for Playwright pages.

axe-core is not vendored: at test time the pinned version is fetched once with npm (`npm pack`,
which checks the registry's integrity hash; we check it against ours too) into `.data/` of the
checkout, and reused from there. Without npm or the registry the test fails, saying so.

    from tests.axe import axe_violations
    assert axe_violations(page) == []
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

AXE_VERSION = "4.14.1"
# `npm pack axe-core@4.14.1 --json` -> integrity (sha512 of the tarball).
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
CACHE = Path(__file__).resolve().parent.parent / ".data" / f"axe-core-{AXE_VERSION}"
# WCAG 2.1 A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def _integrity(tarball: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()


@cache
def axe_source() -> str:
    """The text of axe.min.js, fetched with npm on first use."""
    script = CACHE / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm not found: it fetches axe-core {AXE_VERSION} for the accessibility checks")
        CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603 - fixed argv
            [npm, "pack", f"axe-core@{AXE_VERSION}", "--silent", "--pack-destination", str(CACHE)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        tarball = CACHE / f"axe-core-{AXE_VERSION}.tgz"
        if result.returncode != 0 or not tarball.exists():
            pytest.fail(f"npm pack axe-core@{AXE_VERSION} failed:\n{result.stdout}{result.stderr}")
        if _integrity(tarball) != AXE_INTEGRITY:
            tarball.unlink()
            pytest.fail(f"axe-core-{AXE_VERSION}.tgz does not match its pinned integrity hash")
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/axe.min.js")
            assert member is not None
            script.write_bytes(member.read())
        tarball.unlink()
    return script.read_text()


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
