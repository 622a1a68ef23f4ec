"""Adherence, reminder effectiveness, outcomes and care gaps (a later issue builds them)."""
