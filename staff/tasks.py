"""Tasks of the staff shell: the password-reset email."""

from __future__ import annotations

from urllib.parse import urlsplit

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode


@shared_task(name="staff.tasks.password_reset_email_task", ignore_result=True, max_retries=3)
def password_reset_email_task(user_ids: list[int], base_url: str = "") -> None:
    """Send the reset link to each active user (by id; an unknown address enqueues an empty list).

    `base_url` is the site's own scheme and host, as the request named it (ALLOWED_HOSTS checked it).
    """
    site = urlsplit(base_url or settings.PUBLIC_BASE_URL or "http://localhost")
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True)
    form = PasswordResetForm()
    for user in users:
        if not user.has_usable_password() or not user.email:
            continue
        context = {
            "email": user.email,
            "domain": site.netloc,
            "site_name": "HealthCRM",
            "uid": urlsafe_base64_encode(force_bytes(user.pk)),
            "user": user,
            "token": default_token_generator.make_token(user),
            "protocol": site.scheme,
        }
        form.send_mail(
            "registration/password_reset_subject.txt",
            "registration/password_reset_email.html",
            context,
            settings.DEFAULT_FROM_EMAIL,
            user.email,
        )
