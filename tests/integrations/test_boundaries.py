"""integrations/ adapts the outside world to patients' services: it writes patients' records only
through them (no hand-written audit rows, no private helpers of another module), and patients/
imports nothing of integrations/."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def _imports(package: str) -> list[tuple[str, str, list[str]]]:
    """(file, imported module, imported names) for every import in a package's modules."""
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.extend((str(path.relative_to(REPO)), alias.name, []) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((str(path.relative_to(REPO)), node.module, [a.name for a in node.names]))
    return found


def test_integrations_write_no_audit_rows_of_their_own() -> None:
    offending = [
        (file, module) for file, module, _ in _imports("integrations") if module in ("auditlog.models", "auditlog.diff")
    ]
    assert offending == [], "write patients' records through patients' services (they audit)"


def test_integrations_import_no_private_names_of_another_module() -> None:
    offending = [
        (file, module, name)
        for file, module, names in _imports("integrations")
        for name in names
        if name.startswith("_") and module != "__future__"
    ]
    assert offending == []


def test_patients_import_nothing_of_integrations() -> None:
    offending = [(file, module) for file, module, _ in _imports("patients") if module.split(".")[0] == "integrations"]
    assert offending == []
