"""Twilio: the SMS client (client.py) and its webhooks (views.py: inbound SMS and status callbacks)."""
