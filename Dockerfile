# HealthCRM production image: gunicorn serving healthcrm.wsgi; the same image runs the Celery
# worker and beat (see docker-compose.yml). Built without the `local` extra (embedded PostgreSQL
# and Redis are for `make run` only) and without `dev`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEALTHCRM_ENV=production \
    WEB_CONCURRENCY=3

WORKDIR /app

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
# (psycopg[binary] ships its own libpq: nothing to compile.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself, installed in place so templates and static files stay beside the code.
COPY . .
RUN pip install --no-deps -e .

# Static files for whitenoise's manifest storage. Production settings refuse the development
# secrets, so the build uses throwaway values; nothing here connects to a database or broker.
RUN SECRET_KEY="build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(32))')" \
    FIELD_ENCRYPTION_KEY="$(python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
    BLIND_INDEX_KEY="$(python -c 'import secrets; print(secrets.token_hex(32))')" \
    APP_DATABASE_PASSWORD=build-only \
    ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput

# Run unprivileged; the code stays root-owned and read-only to it.
RUN groupadd --system --gid 10001 healthcrm \
    && useradd --system --uid 10001 --gid healthcrm --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin healthcrm
USER healthcrm

EXPOSE 8000
# gunicorn reads its worker count from WEB_CONCURRENCY.
CMD ["gunicorn", "healthcrm.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--error-logfile", "-"]
