"""Twilio: the SMS client (client.py), engagement's SMS backend (backend.py) and its webhooks (views.py:
inbound SMS and status callbacks)."""
