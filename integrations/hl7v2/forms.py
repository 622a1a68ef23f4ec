from __future__ import annotations

from django import forms


class MessageSearchForm(forms.Form):
    """Support's search: a control id (MSH-10) a PM vendor quotes. POSTed, never put in a URL."""

    control_id = forms.CharField(label="Message control id (MSH-10)", max_length=199, strip=True)
