"""The structure the code promises: imports point down the layers, and no module imports itself
back in a circle. `make lint` runs the same layers contract (`lint-imports`, config in
.importlinter); this file makes a forbidden import fail `make test` too."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("healthcrm", "compliance", "patients", "engagement", "integrations", "analytics", "staff")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The only modules allowed to import across the layers: the wiring that names every app.
WIRING_EXEMPTIONS = {f"healthcrm.{name} -> **" for name in ("settings", "urls", "celery", "wsgi", "asgi")}

# Import cycles that exist today, each being removed by another change: a cycle inside one of these
# sets is tolerated until then; any other cycle fails. None at module level today: the core's
# models <-> notifications circle is gone (Notification lives in models.py), and engagement's
# services <-> delivery <-> tasks circle runs through imports inside functions, which this test
# does not count (being removed by the engagement rooms change all the same).
KNOWN_CYCLES: list[frozenset[str]] = []


def _lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(  # noqa: S603 - our own venv's lint-imports, fixed arguments
        [str(LINT_IMPORTS), "--no-cache", "--config", str(cwd / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_imports_point_down_the_layers() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, f"lint-imports found imports pointing up:\n{result.stdout}{result.stderr}"


def test_a_core_module_importing_a_feature_app_breaks_the_layers(tmp_path: Path) -> None:
    """The contract really bites: a copy of the tree where the core imports patients fails it."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    roles = tmp_path / "healthcrm" / "roles.py"
    roles.write_text(roles.read_text() + "\nfrom patients.models import Patient  # noqa\n")
    result = _lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "healthcrm.roles -> patients.models" in result.stdout


def test_the_only_layer_exemptions_are_the_wiring_modules() -> None:
    """No feature import is waved through: an exception to the layers is a change to this test."""
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    lines = config["importlinter:contract:layers"]["ignore_imports"].splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.strip().startswith(";")}
    assert ignored == WIRING_EXEMPTIONS


# -- No import cycles ----------------------------------------------------------------------------


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in functions, not under TYPE_CHECKING."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _module_level_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # `from a import b` imports the module a.b when there is one, else a name of a.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative): the groups of modules that import each other in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def _a_cycle_in(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through the group, for the failure message: a -> b -> ... -> a."""
    start = min(group)
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for child in sorted(graph[path[-1]] & group):
            if child == start:
                return [*path, start]
            if child not in seen:
                seen.add(child)
                paths.append([*path, child])
    return sorted(group)


def test_no_import_cycles_between_modules() -> None:
    graph = _import_graph()
    new = [g for g in _strongly_connected(graph) if not any(g <= known for known in KNOWN_CYCLES)]
    assert new == [], "import cycles (module-level imports): " + "; ".join(
        " -> ".join(_a_cycle_in(g, graph)) for g in new
    )


@pytest.mark.parametrize(
    ("sources", "cycle"),
    [
        ({"a": "import b", "b": "from a import x"}, {"a", "b"}),
        ({"a": "def f():\n    import b", "b": "import a"}, None),
        ({"a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import b", "b": "import a"}, None),
    ],
)
def test_the_cycle_finder_sees_module_level_imports_only(sources: dict[str, str], cycle: set[str] | None) -> None:
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, source in sources.items():
        for node in _module_level_imports(ast.parse(source)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            graph[name] |= {n for n in names if n in sources}
    assert _strongly_connected(graph) == ([cycle] if cycle else [])
