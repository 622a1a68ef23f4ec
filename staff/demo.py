"""Demo seeding for the staff shell: authenticators for the demo's staff accounts.

Staff and superusers always need a second factor, so the platform administrator and the clinic
admins (is_staff) of `make run` get a confirmed authenticator with one published demo key, for
development only: any TOTP app (or `oathtool --totp -b KEY`) given DEMO_TOTP_SECRET signs them
in. Never in production: there, `manage.py mfa_enrolment_link USER` issues a one-time link.
"""

from __future__ import annotations

from base64 import b32decode

from django.conf import settings

from healthcrm import demo
from staff.models import AuthenticatorDevice

# bandit B105: a published demo key (README), never created in production.
DEMO_TOTP_SECRET = "HEALTHCRMDEMOKEYHEALTHCRMDEMOKEY"  # nosec B105


def demo_otpauth_uri() -> str:
    return f"otpauth://totp/HealthCRM:demo?secret={DEMO_TOTP_SECRET}&issuer=HealthCRM&digits=6&period=30"


@demo.register("authenticators", per_organization=False)
def authenticators(run: demo.DemoRun) -> None:
    """A confirmed authenticator with the demo key for every staff demo user (not in production)."""
    if settings.PRODUCTION:
        return
    key = b32decode(DEMO_TOTP_SECRET).hex()
    for user in run.users.values():
        if user.is_staff or user.is_superuser:
            AuthenticatorDevice.objects.filter(user=user).delete()
            AuthenticatorDevice.objects.create(user=user, name="Demo authenticator", key=key, confirmed=True)
