"""Issue #11, item 2: full-name search (every word, any order, initials), partial MRN, phone tails,
and a query that cannot be searched says why. All through blind-index equality."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from compliance.models import AccessLog
from healthcrm.tenancy import organization_context
from patients.models import Patient, PatientNamePrefix
from patients.selectors import patient_list
from patients.services import patient_update
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(org_a, org_b):
    with organization_context(org_a):
        angela = PatientFactory(
            given_name="Angela", family_name="Watson", preferred_name="Angie", mrn="NS-000123",
            phone_mobile="+13126480142",
        )  # fmt: skip
        brown = PatientFactory(given_name="Angela", family_name="Brown", mrn="NS-001230")
        martin = PatientFactory(given_name="Martin", family_name="Watson", mrn="NS-000124")
        jose = PatientFactory(given_name="José María", family_name="Núñez-García", mrn="NS-000125")
        london = PatientFactory(given_name="Olive", family_name="Thames", mrn="LDN-77", phone_mobile="+442079460958")
    with organization_context(org_b):
        PatientFactory(given_name="Angela", family_name="Watson", mrn="NS-000123", phone_mobile="+13126480142")
    return {"angela": angela, "brown": brown, "martin": martin, "jose": jose, "london": london}


def _found(org, query):
    with organization_context(org):
        return {p.pk for p in patient_list(query=query)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Angela Watson", {"angela"}),
        ("Watson, Angela", {"angela"}),
        ("watson angela", {"angela"}),
        ("  ANGELA   watson ", {"angela"}),
        ("Angela W", {"angela"}),  # an initial beside a whole name
        ("Angela Wa", {"angela"}),
        ("W. Angela", {"angela"}),
        ("Watson A", {"angela"}),  # Martin Watson has no A
        ("Angela B", {"brown"}),
        ("ang wat", {"angela"}),  # prefixes of both
        ("Angie Watson", {"angela"}),  # the preferred name
        ("angie", {"angela"}),
        ("Angela", {"angela", "brown"}),
        ("Watson", {"angela", "martin"}),
        ("Angela Smith", set()),  # every word must match
        ("Angela Watson Brown", set()),
        ("jose maria nunez garcia", {"jose"}),
        ("García, José", {"jose"}),
        ("Jose G", {"jose"}),
        ("nunez-g", {"jose"}),
        ("Ang W", set()),  # an initial only beside a whole word, never beside a prefix
    ],
)
def test_every_word_matches_some_name_part_in_any_order(org_a, org_b, people, query, expected) -> None:
    assert _found(org_a, query) == {people[key].pk for key in expected}


def test_another_organizations_namesake_is_not_found(org_a, org_b, people) -> None:
    assert _found(org_a, "Angela Watson") == {people["angela"].pk}
    with organization_context(org_b):
        [theirs] = patient_list(query="Angela W")
    assert theirs.pk != people["angela"].pk


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("123", {"angela"}),  # the number after the prefix, without its padding
        ("000123", {"angela"}),
        ("NS-000123", {"angela"}),
        ("ns000123", {"angela"}),
        ("1230", {"brown"}),
        ("12", set()),  # no partial numbers: the whole number
        ("77", {"london"}),
        ("NS-123", set()),  # with letters the MRN is exact
    ],
)
def test_partial_mrn_is_the_number_after_the_prefix(org_a, org_b, people, query, expected) -> None:
    assert _found(org_a, query) == {people[key].pk for key in expected}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("648-0142", {"angela"}),  # last 7 digits
        ("6480142", {"angela"}),
        ("3126480142", {"angela"}),  # last 10 digits
        ("(312) 648-0142", {"angela"}),
        ("+1 312 648 0142", {"angela"}),
        ("648-0143", set()),
        ("26480142", set()),  # 8 digits: neither a whole number nor its last 7 or 10
        ("2079460958", {"london"}),  # a UK number without its country code
        ("946 0958", {"london"}),
    ],
)
def test_phone_by_its_last_7_or_10_digits(org_a, org_b, people, query, expected) -> None:
    assert _found(org_a, query) == {people[key].pk for key in expected}


def test_a_renamed_preferred_name_moves_its_search_rows(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory(given_name="Wilhelmina", family_name="Oakes", preferred_name="Billie")
        assert list(patient_list(query="Billie Oakes")) == [patient]
        patient_update(patient=patient, preferred_name="Mina")
        assert list(patient_list(query="Billie Oakes")) == []
        assert list(patient_list(query="Mina O")) == [patient]
        assert PatientNamePrefix.objects.filter(patient=patient).count() == len(set(patient.name_search_digests))


def test_no_plaintext_in_the_search_columns_or_rows(org_a, people) -> None:
    """Only HMACs: no name, initial, MRN number or phone digits in any search column or row."""
    with organization_context(org_a), connection.cursor() as cursor:
        cursor.execute(
            "SELECT name_search_digests, mrn_digits_bidx, phone_mobile_last7_bidx, phone_mobile_last10_bidx "
            "FROM patients_patient WHERE id = %s",
            [people["angela"].pk],
        )
        digests, *others = cursor.fetchone()
        cursor.execute("SELECT digest FROM patients_patientnameprefix WHERE patient_id = %s", [people["angela"].pk])
        rows = [r[0] for r in cursor.fetchall()]
    values = [*digests, *others, *rows]
    assert values and all(len(v) == 64 and set(v) <= set("0123456789abcdef") for v in values)
    assert set(rows) == set(digests)


@pytest.mark.parametrize(
    ("query", "column_index"),
    [
        ("angela watson", "patient_prefix_lookup"),
        ("angela w", "patient_prefix_lookup"),
        ("6480142", "phone_mobile_last7"),
        ("3126480142", "phone_mobile_last10"),
        ("123", "mrn_digits"),
    ],
)
def test_searches_use_an_index_under_rls(org_a, query, column_index) -> None:
    """Under RLS only leakproof operators (equality) can use an index: check each new lookup does."""
    with organization_context(org_a):
        PatientFactory.create_batch(30)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: ask for the index if usable
            sql, params = patient_list(query=query).query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert column_index in plan, plan
    assert "Seq Scan" not in plan, plan


def test_rebuild_search_indexes_restores_lost_rows(org_a, org_b, people) -> None:
    """Rows written without the hashes (raw SQL, an old key) are made findable again by the command."""
    with organization_context(org_a):
        Patient.objects.update(name_search_digests=[], phone_mobile_last7_bidx=None, mrn_digits_bidx=None)
        assert _found(org_a, "Angela W") == set() and _found(org_a, "6480142") == set()
    call_command("rebuild_search_indexes", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert _found(org_a, "Angela W") == {people["angela"].pk}
    assert _found(org_a, "6480142") == {people["angela"].pk}
    assert _found(org_a, "123") == {people["angela"].pk}


# -- Saying why ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["W", "A W", "An", "Jo Li"])
def test_a_query_with_no_word_of_3_letters_says_why(client_for, nurse_user, people, query) -> None:
    client = client_for(nurse_user)
    content = client.post(reverse("patients:list"), {"q": query}).content.decode()
    assert "Type at least 3 letters of a name" in content
    assert "Watson" not in content


def test_a_full_name_search_lists_the_patient_and_logs_no_term(client_for, nurse_user, people) -> None:
    client = client_for(nurse_user)
    content = client.post(reverse("patients:list"), {"q": "Watson, Angela"}).content.decode()
    assert "Watson, Angela" in content and "Brown" not in content and "Martin" not in content
    assert "Type at least 3 letters" not in content
    with organization_context(people["angela"].organization):
        log = AccessLog.objects.filter(actor=nurse_user).latest("id")
    assert "Watson" not in str(log.__dict__) and "Angela" not in str(log.__dict__)


def test_no_match_explains_what_a_search_can_be(client_for, nurse_user, people) -> None:
    client = client_for(nurse_user)
    content = client.post(reverse("patients:list"), {"q": "Ang W"}).content.decode()
    assert "No patient matches that search." in content
    assert "an initial beside a whole name" in content and "last 7 or 10 digits" in content
