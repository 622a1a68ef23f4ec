"""Erasure requests, legal holds and the retention job (issue 13 item 5)."""
