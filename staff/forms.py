from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import forms as auth_forms


class TOTPForm(forms.Form):
    token = forms.RegexField(
        regex=r"^\s*\d{6}\s*$",
        label="6-digit code",
        error_messages={"invalid": "Enter the 6 digits your authenticator app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )

    def clean_token(self) -> str:
        return self.cleaned_data["token"].strip()


class SecondFactorForm(forms.Form):
    """The sign-in check: a 6-digit code from the authenticator, or one of the recovery codes."""

    token = forms.RegexField(
        regex=r"^\s*(\d{6}|[0-9A-Fa-f]{5}-?[0-9A-Fa-f]{5})\s*$",
        label="6-digit code or recovery code",
        error_messages={"invalid": "Enter the 6 digits your authenticator app shows, or a recovery code."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_token(self) -> str:
        return self.cleaned_data["token"].strip()

    @property
    def is_recovery_code(self) -> bool:
        return not self.cleaned_data["token"].isdigit()


class ReauthForm(SecondFactorForm):
    """Both factors again: the password, and a code from the authenticator (or a recovery code)."""

    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    field_order = ["password", "token"]


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's reset form doing the same work for a known and an unknown address: one lookup and
    one task either way (the task, given user ids only, builds and sends the email), so the answer's
    timing does not tell whether an account exists."""

    def save(self, *args: Any, request: Any = None, use_https: bool = False, **kwargs: Any) -> None:
        from staff.tasks import password_reset_email_task

        user_ids = [user.pk for user in self.get_users(self.cleaned_data["email"])]
        base_url = f"{'https' if use_https else 'http'}://{request.get_host()}" if request is not None else ""
        password_reset_email_task.delay(user_ids, base_url)
