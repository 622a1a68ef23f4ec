#!/usr/bin/env python3
"""Curated sabotages of the product's guarantees, each of which some test must catch (`make mutants`).

    python scripts/mutants.py [--only PATTERN] [--list] [--no-baseline] [--keep] [-v] [--timeout SECONDS]

Every `tests/mutants/*.toml` is one sabotage (one file each, named `<NN>-<slug>.toml`):

    guarantee = "one line naming the guarantee as docs/architecture.md names it"
    file = "healthcrm/tenancy.py"          # repo-relative
    find = \"\"\"exact text that occurs exactly once in that file\"\"\"
    replace = \"\"\"the sabotaged text\"\"\"
    tests = ["tests/test_x.py::test_y", ...]   # pytest node ids expected to catch it (fast ones)

The working tree (tracked and untracked files, not ignored ones) is copied once to a scratch folder
that reuses this checkout's .venv; the repository itself is never changed. The named tests first run
there unchanged (the baseline: they must pass, or a "kill" would prove nothing); then each entry is
applied alone, its tests run, and the file is restored. An entry is *killed* when its tests fail,
*survived* when they pass; an entry whose `find` text is missing or not unique, or whose run cannot
start (no such test, a collection error, a timeout), is an *error*. Exit status 0 only when every
entry is killed.

Databases: the runs use their own, next to DATABASE_URL's (`<name>_mutants`, test database
`test_<name>_mutants`) and their own app role (`<APP_DATABASE_USER>_<name>_mutants`), so a sabotage
of grants or roles never reaches another checkout's. The test database is migrated once into a
template (`<name>_mutants_template`) and copied before each run (a fraction of a second, where a
migrate takes a minute); entries that sabotage migrations or the operations they run
(`*/migrations/*`, the top of `healthcrm/db.py`) get a freshly migrated test database instead.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
ENTRIES = Path("tests/mutants")
KEYS = {"guarantee": str, "file": str, "find": str, "replace": str, "tests": list}
# Sabotages of migrations change what migrate builds: a copied template database would not show
# them. Files that mix both kinds name where the code run on every test session begins (grants and
# roles, after every migrate): a sabotage above that line gets a fresh database too (and so does
# the whole file if the line is gone).
FRESH_DATABASE = ("*/migrations/*",)
MIGRATION_CODE_ENDS = {"healthcrm/db.py": "def append_only_tables("}
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "--no-header", "-o", "console_output_style=classic"]


class EntryError(Exception):
    """An entry that cannot be applied as written (the message says which and why)."""


@dataclass
class Entry:
    name: str
    guarantee: str
    file: str
    find: str
    replace: str
    tests: list[str]


@dataclass
class Outcome:
    entry: str
    status: str  # killed | survived | error
    seconds: float = 0.0
    detail: str = ""
    guarantee: str = ""


@dataclass
class Databases:
    url: str  # DATABASE_URL for the runs (its name gets pytest-django's test_ prefix)
    owner_url: str  # the owner on the maintenance database, for CREATE/DROP DATABASE
    name: str
    template: str
    app_user: str

    @property
    def test_name(self) -> str:
        return f"test_{self.name}"


# -- Entries -----------------------------------------------------------------------------------


def load_entry(path: Path, root: Path) -> Entry:
    """Read and check one entry against the tree at `root`; EntryError says what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EntryError(f"{path.name}: not readable TOML ({exc})") from None
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise EntryError(f"{path.name}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise EntryError(f"{path.name}: unknown key(s) {', '.join(unknown)}")
    for key, kind in KEYS.items():
        if not isinstance(data[key], kind):
            raise EntryError(f"{path.name}: {key} must be a {kind.__name__}")
    tests = data["tests"]
    if not tests or not all(isinstance(test, str) and test.startswith("tests/") for test in tests):
        raise EntryError(f"{path.name}: tests must be a non-empty list of pytest node ids under tests/")
    if data["find"] == data["replace"]:
        raise EntryError(f"{path.name}: replace is the same text as find (nothing is sabotaged)")
    target = root / data["file"]
    if Path(data["file"]).is_absolute() or not target.resolve().is_relative_to(root.resolve()):
        raise EntryError(f"{path.name}: file must be a path inside the repository, got {data['file']!r}")
    if not target.is_file():
        raise EntryError(f"{path.name}: file {data['file']} does not exist")
    count = target.read_text(encoding="utf-8").count(data["find"])
    if count != 1:
        where = "not found" if count == 0 else f"found {count} times (it must be unique)"
        raise EntryError(f"{path.name}: find text {where} in {data['file']}: {_first_line(data['find'])!r}")
    return Entry(path.name, data["guarantee"], data["file"], data["find"], data["replace"], list(tests))


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 80 else line[:77] + "..."


def entry_paths(root: Path, pattern: str = "*") -> list[Path]:
    return sorted(path for path in (root / ENTRIES).glob("*.toml") if fnmatch.fnmatch(path.name, pattern))


# -- Scratch copy and databases -----------------------------------------------------------------


def scratch_copy(source: Path) -> Path:
    """The working tree (tracked + untracked, not ignored) in a new temporary folder, with .venv linked."""
    listed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607 - git from PATH
        cwd=source,
        check=True,
        capture_output=True,
    ).stdout.decode()
    scratch = Path(tempfile.mkdtemp(prefix="healthcrm-mutants-"))
    for relative in filter(None, listed.split("\0")):
        origin = source / relative
        if relative == ".venv" or relative.startswith(".venv/") or not origin.exists() or origin.is_dir():
            continue  # a deleted-but-tracked file, or the venv link
        destination = scratch / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination, follow_symlinks=False)
    (scratch / ".venv").symlink_to((source / ".venv").resolve())
    return scratch


def databases_for(database_url: str, app_user: str) -> Databases:
    parts = urlsplit(database_url)
    base = parts.path.lstrip("/") or "healthcrm"
    name = f"{base}_mutants"[:50]

    def with_name(db: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, ""))

    return Databases(
        url=with_name(name),
        owner_url=with_name("postgres"),
        name=name,
        template=f"{name}_template",
        app_user=f"{app_user}_{name}"[:63],
    )


def _sql(dbs: Databases, *statements: str) -> None:
    import psycopg

    with psycopg.connect(dbs.owner_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_env(dbs: Databases, scratch: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": dbs.url,
        "DATABASE_LOGIN": "app",
        "APP_DATABASE_USER": dbs.app_user,
        # The copy's modules, never the editable install's (which points at another checkout), in
        # this process and in the workers it starts; no bytecode, so a restored file is never stale.
        "PYTHONPATH": str(scratch),
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLUMNS": "400",  # pytest's summary lines keep the error message (-v shows it)
    }
    return env


def build_template(dbs: Databases, scratch: Path) -> None:
    """Migrate a template database once (as the owner); each run copies it."""
    _sql(dbs, f"DROP DATABASE IF EXISTS {_quoted(dbs.test_name)}", f"DROP DATABASE IF EXISTS {_quoted(dbs.template)}")
    env = {**run_env(dbs, scratch), "DATABASE_URL": dbs.url.rsplit("/", 1)[0] + "/" + dbs.template}
    python = str(scratch / ".venv/bin/python")
    for command in (["manage.py", "db_bootstrap"], ["manage.py", "migrate", "--noinput", "-v", "0"]):
        subprocess.run(  # noqa: S603 - the copy's own python, fixed arguments
            [python, *command], cwd=scratch, env={**env, "DATABASE_LOGIN": "owner"}, check=True, capture_output=True
        )


def fresh_test_database(dbs: Databases, from_template: bool) -> None:
    statements = [f"DROP DATABASE IF EXISTS {_quoted(dbs.test_name)}"]
    if from_template:
        statements.append(f"CREATE DATABASE {_quoted(dbs.test_name)} TEMPLATE {_quoted(dbs.template)}")
    _sql(dbs, *statements)


def check_imports_from(scratch: Path, env: dict[str, str]) -> None:
    """Refuse to run if the copy's Python would import the project from anywhere but the copy."""
    probe = "import healthcrm, tests; print(healthcrm.__file__); print(tests.__file__)"
    found = subprocess.run(  # noqa: S603 - the copy's own python, fixed arguments
        [str(scratch / ".venv/bin/python"), "-c", probe], cwd=scratch, env=env, capture_output=True, text=True
    )
    paths = found.stdout.split()
    if found.returncode != 0 or not paths or not all(Path(p).resolve().is_relative_to(scratch) for p in paths):
        raise SystemExit(f"The scratch copy imports the project from elsewhere: {found.stdout}{found.stderr}")


# -- Runs ---------------------------------------------------------------------------------------


def run_tests(
    dbs: Databases, scratch: Path, tests: list[str], *, fresh: bool, timeout: float
) -> tuple[int | None, str]:
    """Run `tests` in the copy on a test database of their own: (pytest's exit code or None on timeout, output)."""
    fresh_test_database(dbs, from_template=not fresh)
    command = [str(scratch / ".venv/bin/python"), *PYTEST, "--create-db" if fresh else "--reuse-db", *tests]
    try:
        done = subprocess.run(  # noqa: S603 - the copy's python; node ids are arguments, no shell
            command, cwd=scratch, env=run_env(dbs, scratch), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return None, output
    return done.returncode, done.stdout + done.stderr


def _tail(output: str, lines: int = 6) -> str:
    kept = [line for line in output.strip().splitlines() if line.strip()]
    return "\n".join("      " + line for line in kept[-lines:])


def needs_fresh_database(entry: Entry, original: str) -> bool:
    """Whether the sabotaged code runs only while migrating (so a copied, migrated template hides it)."""
    if any(fnmatch.fnmatch(entry.file, pattern) for pattern in FRESH_DATABASE):
        return True
    marker = MIGRATION_CODE_ENDS.get(entry.file)
    if marker is None:
        return False
    end = original.find(marker)
    return end < 0 or original.find(entry.find) < end


def _caught_by(output: str) -> str:
    """pytest's summary lines naming what failed (-ra prints them), so a kill can be checked for its reason."""
    lines = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return "\n".join("      " + line[:200] for line in lines[:3])


def run_entry(entry: Entry, dbs: Databases, scratch: Path, timeout: float) -> Outcome:
    target = scratch / entry.file
    original = target.read_text(encoding="utf-8")
    fresh = needs_fresh_database(entry, original)
    target.write_text(original.replace(entry.find, entry.replace, 1), encoding="utf-8")
    started = time.monotonic()
    try:
        code, output = run_tests(dbs, scratch, entry.tests, fresh=fresh, timeout=timeout)
    finally:
        target.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    if code == 1:  # pytest: some test failed (or errored in set-up): the sabotage was caught
        return Outcome(entry.name, "killed", seconds, _caught_by(output), entry.guarantee)
    if code == 0:
        return Outcome(entry.name, "survived", seconds, "the named tests pass with the sabotage", entry.guarantee)
    why = "timed out" if code is None else f"pytest exited {code} (no such test, or collection failed)"
    return Outcome(entry.name, "error", seconds, f"{why}\n{_tail(output)}", entry.guarantee)


def report(outcomes: list[Outcome], verbose: bool = False) -> int:
    for outcome in outcomes:
        print(f"  {outcome.status:<8} {outcome.entry:<44} {outcome.seconds:6.1f} s  {outcome.guarantee}")
        if outcome.detail and (outcome.status != "killed" or verbose):
            print(outcome.detail if outcome.status == "killed" else f"      {outcome.detail}")
    killed = sum(outcome.status == "killed" for outcome in outcomes)
    print(f"killed {killed}/{len(outcomes)}")
    return 0 if outcomes and killed == len(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="*", help="run the entries whose file name matches (fnmatch), e.g. '07-*'")
    parser.add_argument("--list", action="store_true", help="check and list the entries, run nothing")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the named tests unchanged first")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="name the failed tests of each killed entry")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run [900]")
    args = parser.parse_args(argv)

    outcomes: list[Outcome] = []
    entries: list[Entry] = []
    for path in entry_paths(REPO, args.only):
        try:
            entries.append(load_entry(path, REPO))
        except EntryError as exc:
            outcomes.append(Outcome(path.name, "error", detail=f"malformed: {exc}"))
    if not entries and not outcomes:
        print(f"No entries match {args.only!r} in {ENTRIES}/.")
        return 1
    if args.list:
        for entry in entries:
            print(f"  {entry.name:<44} {entry.file:<40} {entry.guarantee}")
        return report(outcomes) if outcomes else 0

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("DATABASE_URL is not set (`make mutants` sets it up).")
        return 1
    dbs = databases_for(database_url, os.environ.get("APP_DATABASE_USER", "healthcrm_app"))
    scratch = scratch_copy(REPO)
    started = time.monotonic()
    try:
        print(f"Scratch copy {scratch}; test database {dbs.test_name}; app role {dbs.app_user}.", flush=True)
        check_imports_from(scratch, run_env(dbs, scratch))
        build_template(dbs, scratch)
        if not args.no_baseline and entries:
            everything = sorted({test for entry in entries for test in entry.tests})
            code, output = run_tests(dbs, scratch, everything, fresh=False, timeout=args.timeout * 2)
            if code != 0:
                print(f"Baseline: the named tests do not pass unchanged (exit {code}); nothing was run.")
                print(_tail(output, 30))
                return 1
            print(f"Baseline: {len(everything)} named tests pass unchanged.", flush=True)
        for entry in entries:
            outcome = run_entry(entry, dbs, scratch, args.timeout)
            print(f"  {outcome.status:<8} {entry.name}", flush=True)
            outcomes.append(outcome)
    finally:
        try:
            fresh_test_database(dbs, from_template=False)
            _sql(
                dbs, f"DROP DATABASE IF EXISTS {_quoted(dbs.template)}", f"DROP ROLE IF EXISTS {_quoted(dbs.app_user)}"
            )
        except Exception as exc:  # noqa: BLE001 - clean-up only: the outcomes below still stand
            print(f"Could not drop the mutants' databases or role: {exc}")
        if args.keep:
            print(f"Kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{len(entries)} entries in {time.monotonic() - started:.0f} s:")
    return report(outcomes, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
