"""Engagement's demo data: outreach templates (en, es), default rules, consents and the coming
reminders of the demo organizations. Registered with the core's demo registry; seed_demo orders it
after the patients' calendar, whose appointments the reminders are for."""

from __future__ import annotations

from engagement.management.commands.seed_engagement import seed_organization
from healthcrm import demo
from healthcrm.demo import DemoTenant


@demo.register("outreach")
def seed_outreach(tenant: DemoTenant) -> list[str]:
    offered = seed_organization(tenant.organization)
    return [f"{offered} outreach messages"]
