"""The sabotage runner (scripts/mutants.py, `make mutants`): every entry in tests/mutants/ applies as
written, and a malformed one is reported clearly, naming the entry and what is wrong."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutants_runner", REPO / "scripts/mutants.py")
assert _spec is not None and _spec.loader is not None
mutants = importlib.util.module_from_spec(_spec)
sys.modules["mutants_runner"] = mutants
_spec.loader.exec_module(mutants)


def _entry(root: Path, body: str, name: str = "99-probe.toml") -> Path:
    (root / "tests/mutants").mkdir(parents=True, exist_ok=True)
    path = root / "tests/mutants" / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/walls.py").write_text("def wall():\n    return 1\n\n\ndef other():\n    return 1\n")
    return tmp_path


ENTRY = """
guarantee = "a wall"
file = "pkg/walls.py"
find = \"\"\"{find}\"\"\"
replace = "return 2"
tests = ["tests/test_x.py::test_y"]
"""


def test_every_entry_in_the_repository_applies_as_written() -> None:
    paths = mutants.entry_paths(REPO)
    assert paths, "tests/mutants/ has no entries"
    entries = [mutants.load_entry(path, REPO) for path in paths]
    assert all(entry.tests and entry.guarantee for entry in entries)


@pytest.mark.parametrize(
    ("find", "reason"),
    [
        ("return 3", "find text not found in pkg/walls.py: 'return 3'"),
        ("return 1", "find text found 2 times (it must be unique) in pkg/walls.py: 'return 1'"),
    ],
)
def test_a_find_text_missing_or_not_unique_is_reported_with_the_entry_and_the_text(tree, find, reason) -> None:
    path = _entry(tree, ENTRY.format(find=find))
    with pytest.raises(mutants.EntryError) as refused:
        mutants.load_entry(path, tree)
    assert str(refused.value) == f"99-probe.toml: {reason}"


def test_a_missing_key_or_file_is_reported(tree) -> None:
    with pytest.raises(mutants.EntryError, match=r"^99-probe.toml: missing key\(s\) tests$"):
        mutants.load_entry(_entry(tree, 'guarantee = "g"\nfile = "pkg/walls.py"\nfind = "a"\nreplace = "b"\n'), tree)
    with pytest.raises(mutants.EntryError, match="file pkg/gone.py does not exist"):
        mutants.load_entry(_entry(tree, ENTRY.format(find="x").replace("pkg/walls.py", "pkg/gone.py")), tree)


def test_a_unique_find_text_loads_and_a_malformed_entry_counts_as_not_killed(tree, capsys) -> None:
    entry = mutants.load_entry(_entry(tree, ENTRY.format(find="def wall():\n    return 1")), tree)
    assert (entry.file, entry.replace, entry.tests) == ("pkg/walls.py", "return 2", ["tests/test_x.py::test_y"])
    outcomes = [
        mutants.Outcome("06-a.toml", "killed"),
        mutants.Outcome("07-b.toml", "error", detail="malformed: 07-b.toml: find text not found"),
    ]
    assert mutants.report(outcomes) == 1
    printed = capsys.readouterr().out
    assert "malformed: 07-b.toml: find text not found" in printed and "killed 1/2" in printed
    assert mutants.report(outcomes[:1]) == 0
