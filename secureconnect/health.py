"""Liveness, readiness and metrics for operators and orchestrators.

``/health`` never touches the database or Redis: a liveness probe that depends on a backend
turns a backend outage into a restart storm. ``/health/ready`` follows the persistence state;
quarantined journal entries are named in its full report (``spool_quarantined``) but do not make
the instance unready: the database is fine, and an operator's alert can fire on the count.

``/health`` is public and minimal. ``/health/ready`` tells anyone only ready or not (its status
code, and ``{"status": ...}``); its full report (engine, version, last errors with their
host:port, socket counts) and ``/metrics`` are for the operator who sends
``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from calls.persistence import availability
from calls.persistence.spool import get_spool
from core.timefmt import iso_z
from signaling.layers import layer_status

SERVICE_NAME = "video-service"


def _spool_depth() -> int | None:
    try:
        return get_spool().depth()
    except Exception:
        return None


def _spool_quarantined() -> int | None:
    try:
        return get_spool().quarantined_count()
    except Exception:
        return None


def is_operator(request) -> bool:
    """The request carries ``Authorization: Bearer <METRICS_TOKEN>`` (never true with no token set)."""
    token = settings.METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


@require_GET
def health(request):
    return JsonResponse(
        {
            "status": "healthy",
            "service": SERVICE_NAME,
            "persistence": availability.current(),
            "timestamp": iso_z(datetime.now(UTC)),
        }
    )


@require_GET
def ready(request):
    status = availability.status()
    body = {"status": "ready" if status.state == availability.OPERATIONAL else "not_ready"}
    if is_operator(request):
        body |= {
            "service": SERVICE_NAME,
            **status.as_dict(),
            "spool_depth": _spool_depth(),
            "spool_quarantined": _spool_quarantined(),
            # What signaling last saw of Redis (no I/O here). Informational only: REST works without
            # Redis, so an outage there must not take the instance out of rotation.
            "channel_layer": layer_status(),
        }
    response = JsonResponse(body, status=200 if status.state == availability.OPERATIONAL else 503)
    if status.state != availability.OPERATIONAL:
        response["Retry-After"] = str(settings.PERSISTENCE_RETRY_AFTER)
    return response


@require_GET
def metrics(request):
    """For the operator's bearer token only (401 otherwise); with no token configured, open in
    development and absent (404) in production."""
    from calls.persistence import metrics as persistence_metrics

    if settings.METRICS_TOKEN:
        if not is_operator(request):
            response = HttpResponse(
                "Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif settings.IS_PRODUCTION:
        raise Http404("No METRICS_TOKEN is configured.")

    depth = _spool_depth()
    if depth is not None:
        persistence_metrics.spool_depth.set(depth)
    quarantined = _spool_quarantined()
    if quarantined is not None:
        persistence_metrics.spool_quarantined.set(quarantined)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
