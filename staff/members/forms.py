from __future__ import annotations

from django import forms

from healthcrm.roles import Role


class InviteForm(forms.Form):
    first_name = forms.CharField(label="Given name", max_length=150)
    last_name = forms.CharField(label="Family name", max_length=150)
    email = forms.EmailField(label="Email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
