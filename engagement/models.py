"""Outreach: channels, consent, rules, templates, outbox (issue #4 builds it)."""
