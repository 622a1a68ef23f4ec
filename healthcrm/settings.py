"""HealthCRM settings: one module, read from the environment.

Development defaults let `make run` work on a fresh machine; with HEALTHCRM_ENV=production every
development key is refused by name and the secure transport settings are switched on.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import phonenumbers
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from healthcrm.environment import (
    engagement_longest_send,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    is_loopback_host,
)

BASE_DIR = Path(__file__).resolve().parent.parent

HEALTHCRM_ENV = env_choice("HEALTHCRM_ENV", "development", ("development", "production"))
PRODUCTION = HEALTHCRM_ENV == "production"

# Development-only secrets. They are public (they are in git), so production refuses them.
# bandit B105: development value, refused by name in production.
_DEV_SECRET_KEY = "dev-OLtxndboEP4jdfWMQp1qlLUW9jW0ziTsKMOBRzTdOxG2Ch3Atq0Hhftwqcnt1thL44o"  # nosec B105
_DEV_FIELD_ENCRYPTION_KEY = "VRjemGYS_ZFQGP16K2ar-lfsARzRwFqmGgwo2TTjX-0="
_DEV_BLIND_INDEX_KEY = "182a6e645b053593a1b38930c116f8d54079e242629976d6bbd1b422294a59ac"
# bandit B105: development value, refused by name in production.
_DEV_APP_DATABASE_PASSWORD = "healthcrm-app-dev"  # nosec B105

SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
# Off unless asked for, even in development: Django's debug pages print local variables, which
# in this application can be PHI.
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Fernet keys, newest first: the first encrypts, every key decrypts (MultiFernet).
FIELD_ENCRYPTION_KEY = env_list("FIELD_ENCRYPTION_KEY", [_DEV_FIELD_ENCRYPTION_KEY])
# HMAC key for blind indexes (exact-match search over encrypted values). Never rotate it casually:
# every index must be recomputed (`manage.py rotate_encryption_key --reindex`).
BLIND_INDEX_KEY = env_str("BLIND_INDEX_KEY", _DEV_BLIND_INDEX_KEY)

if not FIELD_ENCRYPTION_KEY:
    raise ImproperlyConfigured("The setting FIELD_ENCRYPTION_KEY is empty: give at least one Fernet key.")
if len(BLIND_INDEX_KEY) < 32:
    raise ImproperlyConfigured("The setting BLIND_INDEX_KEY must be at least 32 characters long.")

# Phone numbers written without a country code (+1...) belong to this region (ISO 3166 alpha-2):
# they are stored, and blind-indexed, in E.164 (healthcrm/crypto.py: normalize_phone).
PHONE_DEFAULT_REGION = env_str("PHONE_DEFAULT_REGION", "US").strip().upper()
if PHONE_DEFAULT_REGION not in phonenumbers.SUPPORTED_REGIONS:
    raise ImproperlyConfigured(
        f"The setting PHONE_DEFAULT_REGION={PHONE_DEFAULT_REGION!r} is not a region phone numbers know (e.g. US)."
    )

# ---------------------------------------------------------------------------------------------
# Database. DATABASE_URL names the server, the database and its owner (who migrates). The web
# and worker processes log in as APP_DATABASE_USER, a role that is neither owner, superuser nor
# BYPASSRLS, so PostgreSQL row-level security applies to every query they make.
# ---------------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/healthcrm")
DATABASE_LOGIN = env_choice("DATABASE_LOGIN", "app", ("app", "owner"))
APP_DATABASE_USER = env_str("APP_DATABASE_USER", "healthcrm_app")
APP_DATABASE_PASSWORD = env_str("APP_DATABASE_PASSWORD", _DEV_APP_DATABASE_PASSWORD)

_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True)
if not _db["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("The setting DATABASE_URL must point to PostgreSQL (postgresql://...).")
DATABASE_OWNER = {"USER": _db["USER"], "PASSWORD": _db["PASSWORD"]}
DATABASE_APP = {"USER": APP_DATABASE_USER, "PASSWORD": APP_DATABASE_PASSWORD}
if DATABASE_LOGIN == "app":
    _db.update(DATABASE_APP)
_db["OPTIONS"] = {"application_name": "healthcrm"}
# The tenant middleware and the task base class open the transaction themselves (so the
# organization can be set transaction-locally before the view runs): see healthcrm/tenancy.py.
_db["ATOMIC_REQUESTS"] = False
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:63799/0")

# ---------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    # Django admin with the project's site (compliance/admin_site.py) as the default site.
    "compliance.apps.HealthAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "guardian",
    "auditlog",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_static",
    "healthcrm",
    "compliance",
    "patients",
    "engagement",
    "integrations",
    "analytics",
    # The staff-facing shell, the top floor (may import every app below; none imports it).
    "staff",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Outside everything that may answer for a signed-in user (including the sign-out redirect).
    "healthcrm.security.NoStoreMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After MessageMiddleware: it tells the user why they were signed out.
    "healthcrm.security.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "healthcrm.security.ClientIPMiddleware",
    # Opens the request transaction and sets the organization in it; everything below runs
    # inside, so the audit rows and the change they describe commit together.
    "healthcrm.middleware.TenantMiddleware",
    "healthcrm.security.MFARequiredMiddleware",
    "healthcrm.security.AuditlogMiddleware",
    # Last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "healthcrm.urls"
WSGI_APPLICATION = "healthcrm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "healthcrm.tenancy.organization_context_processor",
            ],
        },
    },
]

AUTH_USER_MODEL = "auth.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "healthcrm.auth.OrganizationRoleBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Sessions: a new id at login (Django's default), server-side idle timeout and an absolute lifetime.
# Kept in Redis, not in a table the app's database role can read: SQL as the app role (one
# injection, one leaked credential) must not yield live session keys (docs/architecture.md).
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Each session key expires with its session (the session backend sets the TTL).
        "KEY_PREFIX": "healthcrm-session",
    },
}
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 15 * 60)
# How long a proof of both factors lets a user change their password or authenticator (staff/reauth.py).
RECENT_AUTH_SECONDS = env_int("RECENT_AUTH_SECONDS", 5 * 60)
SESSION_COOKIE_AGE = env_int("SESSION_ABSOLUTE_LIFETIME", 12 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "healthcrm.views.csrf_failure"

# Transport and headers.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 63072000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (see docs/architecture.md).
if env_bool("SECURE_PROXY_SSL_HEADER", PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Client IPs: X-Forwarded-For is believed only when REMOTE_ADDR is one of these proxies.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# django-axes: lock after repeated failures, counted three ways, each with its own limit
# (healthcrm.auth.PerParameterLockoutHandler): one account from one IP (a typing user, or guessing),
# one account from many IPs (a distributed guess), one IP over many accounts (password spraying).
# The first entry is the account+IP pair, limited by AXES_FAILURE_LIMIT.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_USERNAME_FAILURE_LIMIT = env_int("AXES_USERNAME_FAILURE_LIMIT", 10)
AXES_IP_FAILURE_LIMIT = env_int("AXES_IP_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 30) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
AXES_HANDLER = "healthcrm.auth.PerParameterLockoutHandler"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "healthcrm.security.client_ip"
AXES_VERBOSE = False

# django-otp: TOTP devices (staff.AuthenticatorDevice) are named after the product in authenticator apps.
OTP_TOTP_ISSUER = "HealthCRM"
# A one-time MFA enrolment link (emailed, or printed by `manage.py mfa_enrolment_link`) works this long.
MFA_ENROLMENT_LINK_HOURS = env_int("MFA_ENROLMENT_LINK_HOURS", 24)
# Staff invitations (staff/members): a clinic administrator's emailed link to set a password works
# this long; an organization sends at most STAFF_INVITES_PER_HOUR links an hour, and one member at
# most STAFF_INVITES_PER_MEMBER_PER_DAY a day (first invitation and resends together).
STAFF_INVITATION_HOURS = env_int("STAFF_INVITATION_HOURS", 72)
STAFF_INVITES_PER_HOUR = env_int("STAFF_INVITES_PER_HOUR", 30)
STAFF_INVITES_PER_MEMBER_PER_DAY = env_int("STAFF_INVITES_PER_MEMBER_PER_DAY", 5)

# django-guardian creates an AnonymousUser row on migrate; we never grant it anything.
GUARDIAN_RAISE_403 = False

# django-auditlog: the actor comes from its middleware (requests) or set_actor (tasks).
# Encrypted fields are registered with a full-redaction mask (compliance/audit.py).
AUDITLOG_INCLUDE_ALL_MODELS = False
AUDITLOG_DISABLE_REMOTE_ADDR = False
# Security events (compliance/audit.py gives each entry its organization): access, roles,
# organization settings, passwords, second factors, device tokens. Secrets fully redacted.
# ChannelSettings (Twilio) and FhirConnection are registered by their apps with every encrypted
# field redacted.
_REDACT = "healthcrm.crypto.redact"
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    "healthcrm.Organization",
    "healthcrm.Membership",
    {
        "model": "auth.User",
        "include_fields": ["username", "email", "password", "is_active", "is_staff", "is_superuser"],
        "mask_fields": ["password"],
        "mask_callable": _REDACT,
        "m2m_fields": {"groups", "user_permissions"},
    },
    {
        "model": "staff.AuthenticatorDevice",
        "exclude_fields": ["throttling_failure_timestamp", "throttling_failure_count", "last_t", "last_used_at"],
        "mask_fields": ["key"],
        "mask_callable": _REDACT,
    },
    {
        "model": "otp_static.StaticDevice",
        "exclude_fields": ["throttling_failure_timestamp", "throttling_failure_count", "last_used_at"],
    },
    {"model": "otp_static.StaticToken", "mask_fields": ["token"], "mask_callable": _REDACT},
    {
        "model": "integrations.DeviceToken",
        "exclude_fields": ["last_used_at"],
        "mask_fields": ["token_hash"],
        "mask_callable": _REDACT,
    },
)
# The access log's patient filter finds patients through this function (a dotted path: compliance
# sits below patients): keyword-only query (an MRN or name, by blind index) or pk, returns patients.
ACCESS_LOG_PATIENTS = "patients.selectors.access_log_patients"
# An access-log CSV export holds at most this many rows (narrow the filters for more).
ACCESS_LOG_EXPORT_MAX_ROWS = 50_000
# The anomaly scan (compliance/anomalies.py) reads patients' family-name digests and access flags
# through this function (keyword-only patient_ids; returns {id: (family_name_bidx, access_flag)}).
COMPLIANCE_PATIENT_FACTS = "patients.selectors.anomaly_patient_facts"
# Anomaly rules. Volume: a user's distinct records in a day above max(K x their trailing median
# over BASELINE_DAYS days + MARGIN, FLOOR). Failed sign-ins: at least this many in a day.
ANOMALY_VOLUME_FACTOR = env_float("ANOMALY_VOLUME_FACTOR", 3.0)
ANOMALY_VOLUME_MARGIN = env_int("ANOMALY_VOLUME_MARGIN", 10)
ANOMALY_VOLUME_FLOOR = env_int("ANOMALY_VOLUME_FLOOR", 30)
ANOMALY_BASELINE_DAYS = env_int("ANOMALY_BASELINE_DAYS", 30)
ANOMALY_FAILED_LOGINS = env_int("ANOMALY_FAILED_LOGINS", 5)
# django-axes keeps one row per failed sign-in (not only the running count), for the rule above.
AXES_ENABLE_ACCESS_FAILURE_LOG = True

# SIEM export (compliance/siem/): audit and access events as JSON lines, ids and fingerprints only.
# SIEM_SINK "file" appends to SIEM_FILE_PATH; "syslog" sends RFC 5424 messages over TCP (RFC 6587
# octet counting) to SIEM_SYSLOG_HOST:SIEM_SYSLOG_PORT, over TLS when SIEM_SYSLOG_TLS (verified
# against SIEM_SYSLOG_CA_FILE, or the system's CAs).
SIEM_ENABLED = env_bool("SIEM_ENABLED", False)
SIEM_SINK = env_choice("SIEM_SINK", "file", ("file", "syslog"))
SIEM_FILE_PATH = env_str("SIEM_FILE_PATH", str(BASE_DIR / ".data" / "siem.jsonl"))
SIEM_SYSLOG_HOST = env_str("SIEM_SYSLOG_HOST", "127.0.0.1")
SIEM_SYSLOG_PORT = env_int("SIEM_SYSLOG_PORT", 6514)
SIEM_SYSLOG_TLS = env_bool("SIEM_SYSLOG_TLS", False)
SIEM_SYSLOG_CA_FILE = env_str("SIEM_SYSLOG_CA_FILE", "")
SIEM_TIMEOUT = env_float("SIEM_TIMEOUT_SECONDS", 10.0)
SIEM_BATCH_SIZE = env_int("SIEM_BATCH_SIZE", 500)

# ---------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# Email: console in development; EMAIL_URL (smtp://user:pass@host:port, smtp+tls://...) otherwise.
EMAIL_URL = env_str("EMAIL_URL", "console://")
if EMAIL_URL.startswith("console:"):
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
elif EMAIL_URL.startswith("locmem:"):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
else:
    from urllib.parse import unquote, urlsplit

    _email = urlsplit(EMAIL_URL)
    if _email.scheme not in ("smtp", "smtp+tls", "smtp+ssl"):
        raise ImproperlyConfigured(
            "The setting EMAIL_URL must start with console://, smtp://, smtp+tls:// or smtp+ssl://."
        )
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _email.hostname or "localhost"
    EMAIL_PORT = _email.port or 25
    EMAIL_HOST_USER = unquote(_email.username or "")
    EMAIL_HOST_PASSWORD = unquote(_email.password or "")
    EMAIL_USE_TLS = _email.scheme == "smtp+tls"
    EMAIL_USE_SSL = _email.scheme == "smtp+ssl"


DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HealthCRM <no-reply@healthcrm.example>")

# Twilio: off unless enabled; its other settings matter only then.
TWILIO_ENABLED = env_bool("TWILIO_ENABLED", False)
TWILIO_API_URL = env_str("TWILIO_API_URL", "https://api.twilio.com")
TWILIO_TIMEOUT = env_float("TWILIO_TIMEOUT_SECONDS", 10.0)
# SMTP connections time out too (Django's default waits forever, holding a sender thread and its claim).
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT_SECONDS", 10.0)

# Outreach (engagement/): every setting engagement and integrations/twilio read, declared here once.
# SMS go through a backend (a dotted path to an engagement.delivery.SmsBackend): Twilio's, or in
# development a local sink that marks them sent with a fake id. SMS_BACKEND picks one of these by
# name; ENGAGEMENT_SMS_BACKEND, when set, gives any dotted path.
ENGAGEMENT_SMS_BACKENDS = {
    "twilio": "integrations.twilio.backend.TwilioBackend",
    "outbox_sink": "engagement.delivery.backends.SinkBackend",
}
ENGAGEMENT_SINK_BACKEND = ENGAGEMENT_SMS_BACKENDS["outbox_sink"]  # development only: production refuses it
ENGAGEMENT_SMS_BACKEND = (
    env_str("ENGAGEMENT_SMS_BACKEND", "")
    or ENGAGEMENT_SMS_BACKENDS[
        env_choice("SMS_BACKEND", "twilio" if TWILIO_ENABLED else "outbox_sink", tuple(ENGAGEMENT_SMS_BACKENDS))
    ]
)
# Twilio signs webhooks with the public URL it called: PUBLIC_BASE_URL rebuilds it (never the Host
# header); it also starts patient links and the status-callback URL.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "" if PRODUCTION else "http://127.0.0.1:8000")
# Patient links (confirm, cancel, unsubscribe) expire after this long.
ENGAGEMENT_LINK_MAX_AGE = env_int("ENGAGEMENT_LINK_MAX_AGE_SECONDS", 14 * 24 * 3600)
# Retries: exponential backoff with jitter from RETRY_BASE up to RETRY_CAP seconds.
ENGAGEMENT_RETRY_BASE = env_float("ENGAGEMENT_RETRY_BASE_SECONDS", 30.0)
ENGAGEMENT_RETRY_CAP = env_float("ENGAGEMENT_RETRY_CAP_SECONDS", 3600.0)
# The scan: a taken row comes back after REQUEUE_AFTER if its task was lost; a claim older than
# SENDING_STALE_AFTER is settled by asking the provider. Each scan takes at most SCAN_BATCH ids per
# organization, and no more than its rate allows in SCAN_WINDOW seconds.
ENGAGEMENT_REQUEUE_AFTER = env_float("ENGAGEMENT_REQUEUE_AFTER_SECONDS", 60.0)
ENGAGEMENT_SCAN_BATCH = env_int("ENGAGEMENT_SCAN_BATCH", 500)
ENGAGEMENT_SCAN_WINDOW = env_float("ENGAGEMENT_SCAN_WINDOW_SECONDS", 5.0)
# Due messages go to the worker in chunks of this many ids (each still claimed on its own) and are
# sent by this many threads per worker process; 1 sends one task per message.
ENGAGEMENT_SEND_BATCH = env_int("ENGAGEMENT_SEND_BATCH", 50)
# Campaign rules with {"cohort_id": N} reach a saved cohort through this function (a dotted path:
# engagement sits below analytics and cannot import it). It takes the id and returns the current
# organization's cohort's patient ids, or None when there is no such cohort; empty: no cohorts.
ENGAGEMENT_COHORT_RESOLVER = "analytics.cohorts.cohort_patient_ids_by_id"
# The parties a patient can consent to share data with (the Consent tab's data-sharing choice):
# a dotted path to a function returning {party key: name} for the current organization.
ENGAGEMENT_CONSENT_PARTIES = "integrations.fhir.sharing.consent_parties"

# ---------------------------------------------------------------------------------------------
# Analytics (analytics/): a cancellation this close to the visit counts as a late cancel.
ANALYTICS_LATE_CANCEL_HOURS = env_int("ANALYTICS_LATE_CANCEL_HOURS", 24)
# No-show risk (analytics/risk.py): a score at or above HIGH is flagged "high", above ELEVATED "elevated".
ANALYTICS_RISK_HIGH = env_float("ANALYTICS_RISK_HIGH", 0.30)
ANALYTICS_RISK_ELEVATED = env_float("ANALYTICS_RISK_ELEVATED", 0.15)
if not 0 < ANALYTICS_RISK_ELEVATED <= ANALYTICS_RISK_HIGH < 1:
    raise ImproperlyConfigured("ANALYTICS_RISK_ELEVATED and ANALYTICS_RISK_HIGH must satisfy 0 < elevated <= high < 1.")
# Badges on the appointment calendar and page, from higher apps (patients cannot import them): dotted
# paths of callables taking a list of appointment ids and returning {id: badge dict}.
PATIENTS_APPOINTMENT_BADGES = ["analytics.risk.appointment_badges"]
ENGAGEMENT_SEND_THREADS = env_int("ENGAGEMENT_SEND_THREADS", 16)
# A send waits at most this long for the organization's rate limiter, else goes back to pending.
ENGAGEMENT_RATE_MAX_WAIT = env_float("ENGAGEMENT_RATE_MAX_WAIT_SECONDS", 2.0)
# Exactly-once rests on this: a claim is settled by asking the provider only once no worker can
# still be sending it. The longest a claimed message can take is its wait for a sender thread (the
# batch's messages share ENGAGEMENT_SEND_THREADS), the limiter's wait and the provider's timeout,
# so the default is derived from those, and a configured value below it refuses to start (with a
# stale time shorter than the send, the same provider stand-in received duplicates).
ENGAGEMENT_LONGEST_SEND = engagement_longest_send(
    batch=ENGAGEMENT_SEND_BATCH,
    threads=ENGAGEMENT_SEND_THREADS,
    rate_max_wait=ENGAGEMENT_RATE_MAX_WAIT,
    timeout=max(TWILIO_TIMEOUT, EMAIL_TIMEOUT),
)
ENGAGEMENT_SENDING_STALE_AFTER = env_float(
    "ENGAGEMENT_SENDING_STALE_AFTER_SECONDS", round(1.25 * ENGAGEMENT_LONGEST_SEND + 15.0, 1)
)
if ENGAGEMENT_SENDING_STALE_AFTER <= ENGAGEMENT_LONGEST_SEND:
    raise ImproperlyConfigured(
        f"The setting ENGAGEMENT_SENDING_STALE_AFTER_SECONDS ({ENGAGEMENT_SENDING_STALE_AFTER:g}) must exceed the "
        f"longest send ({ENGAGEMENT_LONGEST_SEND:g} s: ENGAGEMENT_SEND_BATCH / ENGAGEMENT_SEND_THREADS rounds of "
        "ENGAGEMENT_RATE_MAX_WAIT_SECONDS + the provider timeout, TWILIO_TIMEOUT_SECONDS or EMAIL_TIMEOUT_SECONDS), "
        "or a message still being sent could be sent again."
    )
# A send whose outcome is unknown because the provider timed out is asked about this long after the
# timeout (the provider has recorded it by then), not after the stale time a crash needs.
ENGAGEMENT_SETTLE_UNKNOWN_AFTER = env_float("ENGAGEMENT_SETTLE_UNKNOWN_AFTER_SECONDS", 30.0)
# A message the provider never answered (network down, worker crash) is retried within its useful
# life (a reminder until the visit); one without an end gives up this long after it was due.
ENGAGEMENT_GIVE_UP_AFTER = env_float("ENGAGEMENT_GIVE_UP_AFTER_SECONDS", 48 * 3600.0)
# Messages held because the organization's SMS account is incomplete are looked at again this often.
ENGAGEMENT_HOLD_RECHECK = env_float("ENGAGEMENT_HOLD_RECHECK_SECONDS", 900.0)

# Telehealth: each telehealth appointment gets a room at this URL ({room}: 22 random characters).
TELEHEALTH_URL_TEMPLATE = env_str("TELEHEALTH_URL_TEMPLATE", "https://telehealth.healthcrm.example/room/{room}")
if "{room}" not in TELEHEALTH_URL_TEMPLATE:
    raise ImproperlyConfigured("The setting TELEHEALTH_URL_TEMPLATE must contain {room}.")

# FHIR imports and home devices. An upload larger than this is refused before it is stored;
# FHIR_IMPORT_EAGER leaves queued jobs to the caller (tests, scripts) instead of the worker. Devices
# must post over HTTPS in production (behind a TLS-terminating proxy, see SECURE_PROXY_SSL_HEADER).
FHIR_IMPORT_MAX_UPLOAD_BYTES = env_int("FHIR_IMPORT_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)
# Patient documents (PDF, JPEG, PNG): refused above this size, kept in memory while uploaded.
PATIENT_DOCUMENT_MAX_BYTES = env_int("PATIENT_DOCUMENT_MAX_BYTES", 10 * 1024 * 1024)
FHIR_IMPORT_EAGER = env_bool("FHIR_IMPORT_EAGER", False)
DEVICE_ENDPOINT_REQUIRE_HTTPS = env_bool("DEVICE_ENDPOINT_REQUIRE_HTTPS", PRODUCTION and not DEBUG)
# FHIR imports: limits that keep one upload from exhausting the worker (about 500 MB at most for
# any file within the upload size). Defaults admit Synthea-like bundles at the upload limit (a
# 51.5 MB bundle: 58,612 entries, nesting depth 9, entries of about 1 KB); a file beyond one is
# refused with a message naming the setting. Values are counted as JSON commas and opening brackets.
FHIR_IMPORT_MAX_BUNDLE_ENTRIES = env_int("FHIR_IMPORT_MAX_BUNDLE_ENTRIES", 100_000)
FHIR_IMPORT_MAX_NDJSON_LINES = env_int("FHIR_IMPORT_MAX_NDJSON_LINES", 200_000)
FHIR_IMPORT_MAX_UNIT_RESOURCES = env_int("FHIR_IMPORT_MAX_UNIT_RESOURCES", 100_000)
FHIR_IMPORT_MAX_DEPTH = env_int("FHIR_IMPORT_MAX_DEPTH", 64)
FHIR_IMPORT_MAX_ENTRY_BYTES = env_int("FHIR_IMPORT_MAX_ENTRY_BYTES", 8 * 1024 * 1024)
FHIR_IMPORT_MAX_ENTRY_VALUES = env_int("FHIR_IMPORT_MAX_ENTRY_VALUES", 20_000)
# A number with more digits fails its element (Python refuses ints past 4,300 digits anyway).
FHIR_IMPORT_MAX_NUMBER_DIGITS = env_int("FHIR_IMPORT_MAX_NUMBER_DIGITS", 40)

# HL7 v2 over MLLP (integrations/hl7v2/, `manage.py hl7_listener`): one listener for every
# organization; senders are registered per organization (admin). TLS when a certificate is given;
# HL7_TLS_CLIENT_CA_FILE makes client certificates required (and checked against that CA).
HL7_LISTENER_HOST = env_str("HL7_LISTENER_HOST", "127.0.0.1")
HL7_LISTENER_PORT = env_int("HL7_LISTENER_PORT", 2575)
HL7_TLS_CERT_FILE = env_str("HL7_TLS_CERT_FILE", "")
HL7_TLS_KEY_FILE = env_str("HL7_TLS_KEY_FILE", "")
HL7_TLS_CLIENT_CA_FILE = env_str("HL7_TLS_CLIENT_CA_FILE", "")
# A frame larger than this (bytes, at most 1 MiB) is refused with an AR and the connection closed.
HL7_MAX_MESSAGE_BYTES = min(env_int("HL7_MAX_MESSAGE_BYTES", 1024 * 1024), 1024 * 1024)
HL7_IDLE_TIMEOUT_SECONDS = env_float("HL7_IDLE_TIMEOUT_SECONDS", 300.0)
HL7_LISTENER_THREADS = env_int("HL7_LISTENER_THREADS", 8)
# Out-of-order SIU changes wait this long for their S12; raw messages are kept (encrypted) this long.
HL7_HOLD_MINUTES = env_int("HL7_HOLD_MINUTES", 60)
HL7_RAW_RETENTION_DAYS = env_int("HL7_RAW_RETENTION_DAYS", 30)
if bool(HL7_TLS_CERT_FILE) != bool(HL7_TLS_KEY_FILE):
    raise ImproperlyConfigured("Set both HL7_TLS_CERT_FILE and HL7_TLS_KEY_FILE, or neither.")

# ---------------------------------------------------------------------------------------------
# Celery: Redis broker; payloads are ids only (the broker keeps them in clear); results ignored.
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# Keep a worker's database connection across tasks (Celery's Django fixup closes it after each by
# default: a new login per message). Safe with RLS: the organization is set per transaction.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100)
# By task name (glob). Every worker (docker-compose.yml, scripts/run.py) consumes all three
# queues; tests/test_tasks.py checks that every registered task lands on one of them.
CELERY_TASK_ROUTES = {
    "engagement.tasks.*": {"queue": "outreach"},
    "integrations.*": {"queue": "integrations"},  # integrations.fhir.tasks, integrations.<system>.tasks
}
CELERY_TIMEZONE = "UTC"
# The database is the schedule: beat runs short "what is due now?" scans that enqueue ids.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "compliance-purge-expired-sessions": {
        "task": "healthcrm.tasks.clear_expired_sessions_task",
        "schedule": crontab(minute=17),
    },
    # Retention (patients/erasure/): one run per organization, nightly.
    "patients-retention": {"task": "patients.erasure.tasks.retention_all_task", "schedule": crontab(minute=25, hour=3)},
    "integrations-fhir-pull-due": {"task": "integrations.fhir.tasks.fhir_pull_due_task", "schedule": crontab()},
    # HL7 v2: held messages past HL7_HOLD_MINUTES reported, raw copies past retention cleared.
    "integrations-hl7v2-housekeeping": {"task": "integrations.hl7v2.tasks.hl7_housekeeping_due_task", "schedule": 60.0},
    "engagement-dispatch-due": {"task": "engagement.tasks.outbox_dispatch_task", "schedule": 2.0},
    "engagement-materialize-rules": {"task": "engagement.tasks.rules_materialize_all_task", "schedule": 300.0},
    # Analytics facts: what changed, every 15 minutes; everything (age bands, due visits) nightly.
    "analytics-refresh": {"task": "analytics.tasks.refresh_all_task", "schedule": crontab(minute="*/15")},
    "analytics-rebuild": {
        "task": "analytics.tasks.refresh_all_task",
        "schedule": crontab(minute=40, hour=2),
        "kwargs": {"full": True},
    },
    # No-show risk: retrain each organization's model weekly (then score), score the next 14 days daily.
    "analytics-risk-train": {
        "task": "analytics.tasks.risk_train_all_task",
        "schedule": crontab(minute=10, hour=3, day_of_week="sun"),
    },
    "analytics-risk-score": {"task": "analytics.tasks.risk_score_all_task", "schedule": crontab(minute=10, hour=4)},
    # Anomaly alerts: each organization's today and yesterday (its own zone), every 30 minutes;
    # the weekly summary to compliance officers on Monday morning (UTC).
    "compliance-anomaly-scan": {"task": "compliance.tasks.anomaly_scan_all_task", "schedule": crontab(minute="*/30")},
    "compliance-anomaly-weekly": {
        "task": "compliance.tasks.anomaly_weekly_summary_all_task",
        "schedule": crontab(minute=30, hour=7, day_of_week="mon"),
    },
    # SIEM export: every minute when SIEM_ENABLED (the task returns at once otherwise).
    "compliance-siem-ship": {"task": "compliance.tasks.siem_ship_all_task", "schedule": crontab()},
}

# ---------------------------------------------------------------------------------------------
# Logging: structured enough to grep, never PHI (we log ids, never values).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "client_errors_on_one_line": {"()": "healthcrm.logfilters.ClientErrorsOnOneLine"},
        "query_strings_out": {"()": "healthcrm.logfilters.QueryStringsOut"},
        "task_errors_without_values": {"()": "healthcrm.logfilters.TaskErrorsWithoutValues"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # A refused request is one line, not a traceback (5xx keep theirs).
        "django.request": {"filters": ["client_errors_on_one_line"]},
        # runserver's request lines: never a query string (search terms, autocomplete's term=).
        "django.server": {
            "handlers": ["console"],
            "filters": ["query_strings_out"],
            "level": "INFO",
            "propagate": False,
        },
        "django.db.backends": {"level": "WARNING"},
        # Celery's INFO lines carry task arguments and return values; ours are ids only, but keep
        # the noise down. A failed task's line keeps its frames but no exception message (PHI).
        "celery.app.trace": {"level": "WARNING", "filters": ["task_errors_without_values"]},
    },
}

# ---------------------------------------------------------------------------------------------
if PRODUCTION:
    _refused = [
        name
        for name, value, dev_value in (
            ("SECRET_KEY", SECRET_KEY, _DEV_SECRET_KEY),
            ("BLIND_INDEX_KEY", BLIND_INDEX_KEY, _DEV_BLIND_INDEX_KEY),
            ("APP_DATABASE_PASSWORD", APP_DATABASE_PASSWORD, _DEV_APP_DATABASE_PASSWORD),
        )
        if value == dev_value
    ]
    if _DEV_FIELD_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEY:
        _refused.append("FIELD_ENCRYPTION_KEY")
    if _refused:
        raise ImproperlyConfigured(
            "HEALTHCRM_ENV=production refuses the development value of: "
            + ", ".join(_refused)
            + ". Set real secrets (or NAME_FILE pointing to them)."
        )
    if DEBUG:
        raise ImproperlyConfigured("The setting DEBUG must be off when HEALTHCRM_ENV=production.")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("The setting ALLOWED_HOSTS is required when HEALTHCRM_ENV=production.")
    # Emails carry patients' names and appointments: never to stdout or a test outbox, and never in
    # clear over the network (plain SMTP only to a relay on this machine).
    if EMAIL_BACKEND != "django.core.mail.backends.smtp.EmailBackend":
        raise ImproperlyConfigured(
            "The setting EMAIL_URL must name an SMTP server (smtp+tls://, smtp+ssl://, or smtp:// to a "
            "loopback host) when HEALTHCRM_ENV=production: console:// and locmem:// are for development."
        )
    # The development sink marks text messages sent with a fake id: in production reminders would
    # never leave, and without PUBLIC_BASE_URL every Twilio webhook (STOP included) fails its signature.
    if ENGAGEMENT_SMS_BACKEND == ENGAGEMENT_SINK_BACKEND:  # noqa: SIM300 (both settings)
        raise ImproperlyConfigured(
            "The setting SMS_BACKEND is the development sink (outbox_sink: messages marked sent that never leave) "
            "when HEALTHCRM_ENV=production: set TWILIO_ENABLED=true (or SMS_BACKEND=twilio)."
        )
    if not PUBLIC_BASE_URL.startswith("https://"):
        raise ImproperlyConfigured(
            "The setting PUBLIC_BASE_URL must be the site's https:// address when HEALTHCRM_ENV=production "
            "(patient links, Twilio's status callbacks and its webhook signatures are built from it)."
        )
    if not (EMAIL_USE_TLS or EMAIL_USE_SSL or is_loopback_host(EMAIL_HOST)):
        raise ImproperlyConfigured(
            "The setting EMAIL_URL uses plain smtp:// to a host that is not loopback: use smtp+tls:// or "
            "smtp+ssl:// when HEALTHCRM_ENV=production."
        )
