"""Test set-up: real PostgreSQL (as the app role, under RLS), frozen wall clocks, two organizations and
one persona per role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import time_machine
from django.test import testcases

from tests import clocks, dbroles
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytest_plugins = ["tests.fixtures_browser"]


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Hashing speed only: production keeps PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    config.addinivalue_line(
        "markers", "owner_login: logs in to PostgreSQL as the owner for its whole body (exempt from the app-role check)"
    )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    dbroles.ensure_app_role_exists()
    dbroles.login_as_owner()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    # pytest-django created and migrated the test database as the owner; from here on, the app role.
    with django_db_blocker.unblock():
        dbroles.login_as_app()
    yield
    try:
        # The last test's teardown is the last chance to see it leave the owner logged in.
        dbroles.check_logged_in_as_app("after the last test")
    finally:
        with django_db_blocker.unblock():
            dbroles.login_as_owner()


# TransactionTestCase empties tables with TRUNCATE, which the app role may not do (it would
# ignore RLS): flush as the owner, then carry on as the app role.
_flush = testcases.TransactionTestCase._fixture_teardown


def _fixture_teardown_as_owner(self: testcases.TransactionTestCase) -> None:
    dbroles.login_as_owner()
    try:
        _flush(self)
    finally:
        dbroles.login_as_app()


testcases.TransactionTestCase._fixture_teardown = _fixture_teardown_as_owner  # type: ignore[method-assign]


# -- Every test that touches the database runs as the app role: checked, not assumed ---------------
# Around the test body (its fixtures set up: live server, worker) and after its teardown (the flush of
# a transactional test logs in as the owner and back). pytest-django runs transactional tests last, so
# a check made only in some tests' bodies would never see what a transactional teardown left behind.
# A test that means to run its whole body as the owner says so with @pytest.mark.owner_login.

_DB_FIXTURES = frozenset({"db", "transactional_db", "live_server", "django_db_reset_sequences"})


def _uses_database(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(names & _DB_FIXTURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    checked = _uses_database(item) and item.get_closest_marker("owner_login") is None
    if checked:
        dbroles.check_connected_as_app(f"before {item.nodeid}")
    result = yield
    if checked:
        dbroles.check_connected_as_app(f"after {item.nodeid}")
        dbroles.check_other_sessions_are_app(f"after {item.nodeid}")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    # The browser `page` fixture checks the visited pages with axe-core only after a passing body.
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    result = yield
    # With no next item the session's fixtures were torn down too: django_db_setup checks that case.
    if nextitem is not None and _uses_database(item):
        dbroles.check_logged_in_as_app(f"after the teardown of {item.nodeid}")
    return result


# -- Wall clocks: no test reads the real hour (tests/clocks.py says which test runs under which) --


def _markers(node: Any) -> set[str]:
    return {marker.name for marker in node.iter_markers()}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--wall-clock",
        choices=["all", *clocks.WALL_CLOCKS],
        default="all",
        help="run the clock-sensitive tests under this one wall clock instead of all (tests/clocks.py)",
    )


def _clocks_for(node: Any, config: pytest.Config) -> tuple[str, ...]:
    names = clocks.clocks_for(node.path, _markers(node))
    chosen = config.getoption("--wall-clock")
    return names if chosen == "all" or not names else (chosen,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = _clocks_for(metafunc.definition, metafunc.config)
    if len(names) > 1:
        metafunc.parametrize("wall_clock", names, indirect=True, ids=names)


@pytest.fixture(autouse=True)
def wall_clock(request: pytest.FixtureRequest) -> Iterator[datetime | None]:
    """The instant this test started at (time ticks on from it), or None on the real clock.

    Autouse, so it is set up before the test's other function-scoped fixtures: objects they create
    are dated on the test's clock."""
    names = _clocks_for(request.node, request.config)
    name = getattr(request, "param", names[0] if names else None)
    if name is None:
        yield None
        return
    destination = clocks.WALL_CLOCKS[name]
    with time_machine.travel(destination, tick=True):
        yield destination


# -- Personas: two organizations, one user per role in A, a user in B ---------------------------
# The same names in every test folder; a role's permissions are in healthcrm/roles.py.


@pytest.fixture
def org_a(db: None) -> Any:
    return OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)


@pytest.fixture
def org_b(db: None) -> Any:
    return OrganizationFactory(slug="lake", name="Lake Clinic", timezone="America/Los_Angeles", require_mfa=False)


def _member(organization: Any, role: str, username: str, **user: Any) -> Any:
    person = UserFactory(username=username, **user)
    MembershipFactory(user=person, organization=organization, role=role)
    return person


@pytest.fixture
def admin_user(org_a: Any) -> Any:
    """An administrator of organization A: settings, members, imports, outreach rules."""
    return _member(org_a, "admin", "admin@north.example")


@pytest.fixture
def provider_user(org_a: Any) -> Any:
    """A provider in organization A: reads and writes patients and their care."""
    return _member(org_a, "provider", "provider@north.example")


@pytest.fixture
def nurse_user(org_a: Any) -> Any:
    """A nurse in organization A: reads and writes patients and their care."""
    return _member(org_a, "nurse", "nurse@north.example")


@pytest.fixture
def coordinator_user(org_a: Any) -> Any:
    """A care coordinator in organization A: care plans, their templates, outreach rules."""
    return _member(org_a, "coordinator", "coord@north.example")


@pytest.fixture
def frontdesk_user(org_a: Any) -> Any:
    """Front desk in organization A: patients' demographics, scheduling, task queues; no clinical group."""
    return _member(org_a, "frontdesk", "desk@north.example")


@pytest.fixture
def analyst_user(org_a: Any) -> Any:
    """An analyst in organization A: no access to patient records at all (404/403 on patient pages)."""
    return _member(org_a, "analyst", "analyst@north.example")


@pytest.fixture
def compliance_user(org_a: Any) -> Any:
    """A compliance officer in organization A: the access log and the members list, no patients."""
    return _member(org_a, "compliance", "compliance@north.example")


@pytest.fixture
def readonly_user(org_a: Any) -> Any:
    """Read-only in organization A: may open the outreach rules and message templates (and care-plan
    templates) but not write them: a provider, the only role with view and no add/change permission
    there (healthcrm/roles.py). No role reads patients without writing them, so patient pages have no
    read-only persona: the front desk (no clinical group) and the analyst (nothing) cover refusals."""
    return _member(org_a, "provider", "readonly@north.example")


@pytest.fixture
def other_org_user(org_b: Any) -> Any:
    """A nurse in organization B: sees 404 for everything of organization A."""
    return _member(org_b, "nurse", "nurse@lake.example")


@pytest.fixture
def client_for(client: Any) -> Any:
    """`client_for(user)`: the test client, signed in as that user."""

    def sign_in(user: Any) -> Any:
        client.force_login(user)
        if user.is_staff or user.is_superuser:
            # Staff always need the second factor (tests/test_mfa.py checks that).
            from tests.mfa import verify_session

            verify_session(client, user)
        return client

    return sign_in
