"""The demo-data registry: every app's seeding step runs, once, in the order seed_demo declares."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from healthcrm import demo
from healthcrm.models import Organization
from staff.management.commands import seed_demo


def test_seed_demo_orders_every_registered_step() -> None:
    steps = seed_demo.ordered_steps()
    assert [s.name for s in steps] == [
        "users",
        "authenticators",
        "organizations",
        "patients",
        "appointments",
        "care",
        "outreach",
        "history",
        "surveys",
        "education",
        "questionnaires",
        "analytics",
    ]
    assert [s.per_organization for s in steps] == [False, False, False, *[True] * 9]
    modules = {s.name: s.function.__module__ for s in steps}
    # Each app seeds its own tables, from its own demo module.
    assert modules == {
        "users": "healthcrm.demo",
        "authenticators": "staff.demo",
        "organizations": "healthcrm.demo",
        "patients": "patients.demo",
        "appointments": "patients.demo",
        "care": "patients.demo",
        "outreach": "engagement.demo",
        "history": "analytics.demo",
        "surveys": "engagement.demo",
        "education": "engagement.demo",
        "questionnaires": "engagement.demo",
        "analytics": "analytics.demo",
    }


def _registry() -> demo.DemoRegistry:
    registry = demo.DemoRegistry()
    registry.register("setup", per_organization=False)(lambda run: None)
    registry.register("first")(lambda tenant: [])
    registry.register("second")(lambda tenant: [])
    return registry


def test_the_declared_order_is_the_running_order() -> None:
    assert [s.name for s in _registry().ordered(["setup", "second", "first"])] == ["setup", "second", "first"]


@pytest.mark.parametrize(
    "order",
    [
        ["setup", "first"],  # a registered step left out would silently seed nothing
        ["setup", "first", "second", "third"],  # a step nobody registered
        ["setup", "first", "first", "second"],
        ["first", "setup", "second"],  # once-steps (users, organizations) come first
    ],
)
def test_an_order_that_does_not_place_every_step_once_is_refused(order: list[str]) -> None:
    with pytest.raises(ImproperlyConfigured):
        _registry().ordered(order)


def test_two_modules_cannot_register_the_same_step() -> None:
    registry = _registry()

    def first(tenant: demo.DemoTenant) -> list[str]:
        return []

    first.__module__ = "elsewhere.demo"
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        registry.register("first")(first)


@pytest.mark.django_db
def test_seed_demo_runs_the_steps_in_order_and_sums_them_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    registry = demo.DemoRegistry()

    @registry.register("setup", per_organization=False)
    def setup(run: demo.DemoRun) -> None:
        calls.append("setup")
        for spec in demo.DEMO_ORGANIZATIONS:
            run.organizations[spec.slug] = Organization.objects.create(name=spec.name, slug=spec.slug)

    @registry.register("first")
    def first(tenant: demo.DemoTenant) -> list[str]:
        calls.append(("first", tenant.spec.slug))
        tenant.state["seen"] = tenant.organization.slug
        return ["1 thing"]

    @registry.register("second")
    def second(tenant: demo.DemoTenant) -> list[str]:
        calls.append(("second", tenant.state["seen"]))
        return ["2 others", "3 more"]

    monkeypatch.setattr(demo, "registry", registry)
    monkeypatch.setattr(seed_demo, "STEP_ORDER", ("setup", "first", "second"))
    out = io.StringIO()
    call_command("seed_demo", "--patients", "0", stdout=out)
    assert calls == [
        "setup",
        ("first", "northside"),
        ("second", "northside"),
        ("first", "lakeside"),
        ("second", "lakeside"),
    ]
    assert "northside: 1 thing, 2 others and 3 more created." in out.getvalue()
