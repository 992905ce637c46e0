# syntax=docker/dockerfile:1
# triage: one image for every process. The default command is the web
# (gunicorn); the same image runs
#   celery -A triage worker
#   celery -A triage beat -s /tmp/celerybeat-schedule
#   python manage.py migrate --noinput
# The HEALTHCHECK probes the web only: disable it for worker and beat
# containers (compose: `healthcheck: {disable: true}`; Kubernetes ignores it).
ARG PYTHON_VERSION=3.12

# --- builder: compilers available, dependencies installed into a venv -------
# The full python image ships gcc and the headers, so any dependency without
# a wheel still builds; none of that reaches the final image.
FROM python:${PYTHON_VERSION}-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/base.txt /tmp/requirements/base.txt
RUN pip install --no-cache-dir -r /tmp/requirements/base.txt

# --- runtime: slim, no compilers, non-root -----------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG APP_UID=10001
# HOME=/tmp: gunicorn opens its control socket under $HOME/.gunicorn, and with
# a read-only root filesystem only /tmp is writable. PROMETHEUS_MULTIPROC_DIR
# holds the gunicorn workers' metric files, merged on /metrics.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=triage.settings \
    HOME=/tmp \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
RUN groupadd --system --gid "${APP_UID}" triage \
    && useradd --system --uid "${APP_UID}" --gid triage --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin triage
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY . /app
# Static files are collected (hashed and compressed) at build time, so the
# running container never writes outside /tmp. Settings refuse to load
# without these variables: the values exist for this step only.
RUN SECRET_KEY=build-only-not-secret \
    DATABASE_URL=postgresql://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput -v 0 \
    && python -m compileall -q /app \
    && install -d -o "${APP_UID}" -g "${APP_UID}" /tmp/prometheus
USER ${APP_UID}:${APP_UID}
EXPOSE 8000
# No curl in the image: Python's urllib. Django checks the Host header, so the
# probe sends the first ALLOWED_HOSTS entry (or localhost).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.'); h = 'localhost' if h in ('', '*') else h; p = os.environ.get('GUNICORN_BIND', '0.0.0.0:8000').rsplit(':', 1)[1]; r.urlopen(r.Request(f'http://127.0.0.1:{p}/healthz', headers={'Host': h}), timeout=4)"]
CMD ["gunicorn", "-c", "triage/gunicorn.conf.py", "triage.wsgi"]
