"""The patient's side of "who viewed my record" (issue 13 item 2): a request, a signed expiring
link to the contact on file, a one-time code, then the same rows as the staff access report."""
