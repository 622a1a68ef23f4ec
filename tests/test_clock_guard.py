"""No test decides what it expects from the real clock.

tests/conftest.py runs every test of this process under a frozen wall clock (tests/clocks.py), except
the ones marked `browser` or `worker`, whose code under test runs in another process on the real
clock. In such a module (any folder, tests/engagement and tests/patients first of all), a clock read
(`timezone.now()`, `datetime.now()`, `date.today()`, `time.time()`, ...) must therefore say, on its
line or in a comment line just above, why the outcome cannot depend on the hour:
`# real-clock: <why>`. And only those modules may say it.

This is the pattern that once made `make test` fail at night: a worker test enqueued a message due
`timezone.now()` and expected it sent, but set quiet hours 08:00-21:00 in the patient's zone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import clocks

PRAGMA = "# real-clock:"

# Modules whose tests drive code in another process (marked worker or browser): the only ones that
# may read the real clock, each read with a `# real-clock:` reason.
REAL_PROCESS_MODULES = {
    "engagement/test_worker.py": "a real Celery worker subprocess",
    "engagement/test_worker_batch.py": "a real Celery worker subprocess",
    "engagement/test_browser_outreach.py": "Chromium against the live server",
    "engagement/test_browser_staff_message.py": "Chromium against the live server",
    "engagement/test_browser_waitlist_offer.py": "Chromium against the live server",
    "test_browser_htmx_states.py": "Chromium against the live server",
    "engagement/test_browser_education.py": "Chromium against the live server",
    "engagement/test_browser_questionnaire.py": "Chromium against the live server",
    "patients/test_browser_flows.py": "Chromium against the live server",
    "patients/test_browser_merge.py": "Chromium against the live server",
    "patients/test_browser_consent_documents.py": "Chromium against the live server",
    "patients/test_browser_care_edits.py": "Chromium against the live server",
    "patients/test_browser_calendar.py": "Chromium against the live server",
    "patients/test_browser_access_report.py": "Chromium against the live server",
    "test_browser.py": "Chromium against the live server",
    "test_browser_layout.py": "Chromium against the live server",
    "integrations/fhir/test_browser_import.py": "Chromium against the live server",
    "analytics/test_browser.py": "Chromium against the live server",
    "analytics/test_browser_gaps.py": "Chromium against the live server",
    "staff/test_browser_members.py": "Chromium against the live server",
    "compliance/test_browser_break_glass.py": "Chromium against the live server",
    "compliance/test_browser_compliance_flow.py": "Chromium against the live server",
}

# Calls that read the clock: (object, attribute), plus the bare names a `from ... import` can bring.
_READS = {
    ("timezone", "now"),
    ("timezone", "localtime"),
    ("timezone", "localdate"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
}
_CONVERSIONS = {"localtime", "localdate", "gmtime"}  # with an argument they convert, not read


@dataclass(frozen=True)
class Read:
    path: str
    line: int
    call: str
    function: str

    def __str__(self) -> str:
        return f"tests/{self.path}:{self.line} {self.function}(): {self.call}"


def _dotted(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def clock_reads(source: str, path: str) -> list[Read]:
    """Every call in `source` that reads the current date or time, with its enclosing function."""
    tree = ast.parse(source)
    bare: dict[str, str] = {}  # `from django.utils.timezone import now` -> {"now": "timezone.now"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            owner = node.module.rsplit(".", 1)[-1]
            for alias in node.names:
                if (owner, alias.name) in _READS:
                    bare[alias.asname or alias.name] = f"{owner}.{alias.name}"

    reads: list[Read] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name if function == "<module>" else f"{function}.{child.name}")
                continue
            if isinstance(child, ast.Call):
                parts = _dotted(child.func)
                name = None
                if len(parts) >= 2 and (parts[-2], parts[-1]) in _READS:
                    name = ".".join(parts[-2:])
                elif len(parts) == 1 and parts[0] in bare:
                    name = bare[parts[0]]
                if name and not (name.rsplit(".", 1)[-1] in _CONVERSIONS and (child.args or child.keywords)):
                    reads.append(Read(path, child.lineno, f"{name}()", function))
            visit(child, function)

    visit(tree, "<module>")
    return reads


def _frozen(source: str, path: str) -> bool:
    """Whether the module's tests run under a frozen clock (no module-level worker/browser mark)."""
    tree = ast.parse(source)
    module_marks: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Attribute) and _dotted(sub)[:2] == ["pytest", "mark"]:
                    module_marks.add(sub.attr)
    return bool(clocks.clocks_for(clocks.TESTS / path, module_marks))


def violations(source: str, path: str) -> list[str]:
    """What is wrong with the clock reads of the test module at tests/`path`."""
    lines = source.splitlines()
    real_process = path in REAL_PROCESS_MODULES
    problems = []
    if real_process == _frozen(source, path):
        state = "runs under a frozen clock" if real_process else "runs on the real clock"
        problems.append(f"tests/{path}: {state}; update REAL_PROCESS_MODULES in {Path(__file__).name}")
    for read in clock_reads(source, path):
        above = lines[read.line - 2].strip() if read.line > 1 else ""
        said = PRAGMA in lines[read.line - 1] or (above.startswith("#") and PRAGMA in above)
        if not real_process and said:
            problems.append(f"{read}: frozen here; drop the `{PRAGMA}` comment")
        elif real_process and not said:
            problems.append(
                f"{read} reads the real clock ({REAL_PROCESS_MODULES[path]}): say on the line why "
                f"the outcome cannot depend on the hour (`{PRAGMA} ...`), or move the test where it is frozen"
            )
    return problems


def _guarded_modules() -> list[str]:
    return sorted(path.relative_to(clocks.TESTS).as_posix() for path in clocks.TESTS.rglob("*.py"))


@pytest.mark.parametrize("path", _guarded_modules())
def test_no_test_reads_the_real_clock_without_saying_why(path: str) -> None:
    assert violations((clocks.TESTS / path).read_text(), path) == []


def test_every_real_process_module_still_exists() -> None:
    assert set(REAL_PROCESS_MODULES) <= set(_guarded_modules())


# The worker test as it was when it failed at night (commit ceb6311, abridged).
_NIGHT_FAILURE = """
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

def test_opted_out_patient_gets_nothing_and_a_night_message_waits_for_0800(org_a, run_worker) -> None:
    with FakeTwilio(delay=0.01) as fake:
        opted_out, reachable = _patients(org_a, 2)
        with organization_context(org_a):
            sleeper = PatientFactory(phone_mobile="+13125559999", preferred_channel="sms", timezone="Etc/GMT-14")
            configure(org_a, quiet_start=clock(8), quiet_end=clock(21))
            late = services.outbox_enqueue(patient=sleeper, due_at=timezone.now(), template_key="lab_results")
            OutboundMessage.objects.filter(pk=late.pk).update(next_attempt_at=timezone.now())
        run_worker(fake)
        assert _dispatch_until(lambda: fake.bodies_to(reachable.phone_mobile) != [], 20)
"""


def test_the_guard_catches_the_test_that_failed_at_night() -> None:
    found = violations(_NIGHT_FAILURE, "engagement/test_worker.py")
    assert len(found) == 2 and all("reads the real clock" in problem for problem in found)
    assert "test_opted_out_patient_gets_nothing_and_a_night_message_waits_for_0800()" in found[0]
    # The same code in a module that runs frozen is fine: the suite runs it under every wall clock.
    frozen = _NIGHT_FAILURE.replace("pytest.mark.worker, ", "")
    assert violations(frozen, "engagement/test_delivery.py") == []


def test_the_guard_sees_every_spelling_of_now() -> None:
    source = """
from django.utils.timezone import now as right_now
import datetime as dt
def test_x():
    a = right_now()
    b = dt.datetime.now(dt.UTC)
    c = dt.date.today()
    d = timezone.localdate()
    e = timezone.localtime(a)  # a conversion, not a read
    f = time.time()
"""
    calls = [read.call for read in clock_reads(source, "engagement/test_x.py")]
    assert calls == ["timezone.now()", "datetime.now()", "date.today()", "timezone.localdate()", "time.time()"]
