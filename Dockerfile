# syntax=docker/dockerfile:1
# The SecureConnect video service: the production server (python -m secureconnect.server, uvicorn underneath) on port 8083.
# Build: docker build -t secureconnect-video-service .  (docker-compose.yml builds it for you)

# --- build: the dependencies in a virtualenv, from the hashed lock file (requirements.lock: every
# package, transitive ones included, pinned with its hashes; each ships a wheel: no compiler) ----
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes -r /tmp/requirements.lock

# --- runtime: the virtualenv and the code, run as an unprivileged user -----------------------------
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="SecureConnect video service" \
      org.opencontainers.image.description="Call REST API, WebRTC signaling and call history (Django, Channels, uvicorn)"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=secureconnect.settings \
    ENV=production \
    SPOOL_PATH=/var/lib/secureconnect/spool/spool.sqlite3

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root: the service can read it, not change it.
COPY . /app

# Static files are collected at build time (whitenoise serves them). ENV=development here only so
# that settings need no secrets for this step; the image itself defaults to production.
RUN ENV=development python manage.py collectstatic --no-input --verbosity 0 \
    && mkdir -p /app/var /var/lib/secureconnect/spool \
    && chown app:app /app/var /var/lib/secureconnect/spool

USER 10001:10001
EXPOSE 8083

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

# SERVER_WORKERS worker processes (default: one per core the container sees, with REDIS_URL).
CMD ["python", "-m", "secureconnect.server", "--bind", "0.0.0.0", "--port", "8083"]
