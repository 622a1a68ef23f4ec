"""The harness's app-role check (tests/conftest.py, tests/dbroles.py) refuses what it is there to
refuse: a test process logged in as the owner, another session on the test database as the owner."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from tests import dbroles


@pytest.mark.django_db(transaction=True)
def test_the_check_refuses_a_process_logged_in_as_the_owner() -> None:
    dbroles.check_connected_as_app("now")
    dbroles.login_as_owner()
    try:
        with pytest.raises(dbroles.NotTheAppRoleError, match="not as the app role"):
            dbroles.check_logged_in_as_app("as the owner")
    finally:
        dbroles.login_as_app()
    dbroles.check_connected_as_app("back")


@pytest.mark.django_db
def test_the_check_refuses_another_session_on_the_test_database_as_the_owner() -> None:
    dbroles.check_other_sessions_are_app("alone")
    db = connection.settings_dict
    owner = settings.DATABASE_OWNER
    with psycopg.connect(
        dbname=db["NAME"],
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=owner["USER"],
        password=owner["PASSWORD"] or None,
        application_name="a worker started as the owner",
    ):
        with pytest.raises(dbroles.NotTheAppRoleError, match="a worker started as the owner"):
            dbroles.check_other_sessions_are_app("with an owner session")
