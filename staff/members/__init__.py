"""A clinic's staff accounts, managed by its administrators in the staff UI: the members list,
invitations (a one-time link to set a password, then the second factor), roles, deactivation."""
