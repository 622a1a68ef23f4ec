"""Care relationship as the default, break-the-glass as the exception (see policy.py)."""
