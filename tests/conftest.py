"""Test set-up: real PostgreSQL (as the app role, under RLS), two organizations, three personas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import testcases

from tests import dbroles
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytest_plugins = ["tests.fixtures_browser"]


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    # Hashing speed only: production keeps PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


# -- Two organizations, three personas (a writer and a read-only user in A, a user in B) -------


@pytest.fixture
def org_a(db: None) -> Any:
    return OrganizationFactory(slug="north", name="North Clinic", timezone="America/Chicago", require_mfa=False)


@pytest.fixture
def org_b(db: None) -> Any:
    return OrganizationFactory(slug="lake", name="Lake Clinic", timezone="America/Los_Angeles", require_mfa=False)


@pytest.fixture
def writer(org_a: Any) -> Any:
    """A nurse in organization A: reads and writes patients."""
    user = UserFactory(username="nurse@north.example")
    MembershipFactory(user=user, organization=org_a, role="nurse")
    return user


@pytest.fixture
def reader(org_a: Any) -> Any:
    """An analyst in organization A: no access to patient records."""
    user = UserFactory(username="analyst@north.example")
    MembershipFactory(user=user, organization=org_a, role="analyst")
    return user


@pytest.fixture
def other(org_b: Any) -> Any:
    """A nurse in organization B."""
    user = UserFactory(username="nurse@lake.example")
    MembershipFactory(user=user, organization=org_b, role="nurse")
    return user


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
