"""The floor of the REST benchmark: plain Django views that write the same rows as
``POST /v1/calls/initiate``, ``/join`` and ``/end`` (a call and its two participants, then
their updates, and the timeline events each of these adds), with nothing on top: no DRF, no
serializers, no throttles, no services, no persistence layer, no events, no envelope. The
caller is read from the same bearer token (signature and claims checked with PyJWT, as the
service does, without the revocation lookup).

The timeline's positions are those of the benchmark's two-party call (the floor reads nothing
to find them): initiate adds ``initiated`` and ``rang`` (0, 1), join ``accepted`` (2), the
caller's end ``left`` and ``ended`` (3, 4), as ``calls.timeline.record_changes`` does.

Served only by bench/floor_settings.py; the product never routes these."""

from __future__ import annotations

import json
import uuid

import jwt
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from calls.models import Call, CallParticipant, CallTimelineEvent

Kind = CallTimelineEvent.Kind


def _user_id(request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        claims = jwt.decode(
            header[7:],
            settings.JWT_SECRET,
            algorithms=["HS256"],
            audience="secureconnect-api",
            issuer="secureconnect-auth",
        )
    except jwt.InvalidTokenError:
        return None
    return claims["user_id"]


def _events(call_id, first_seq: int, at, *events) -> list[CallTimelineEvent]:
    """(kind, actor id, detail) each, at consecutive positions from ``first_seq``."""
    return [
        CallTimelineEvent(
            id=uuid.uuid4(), call_id=call_id, seq=first_seq + i, at=at, kind=kind, actor_id=actor, detail=detail
        )
        for i, (kind, actor, detail) in enumerate(events)
    ]


def _unauthorized() -> HttpResponse:
    return HttpResponse(status=401)


@csrf_exempt
@require_POST
def floor_initiate(request):
    user_id = _user_id(request)
    if user_id is None:
        return _unauthorized()
    body = json.loads(request.body)
    now = timezone.now()
    call = Call(
        id=uuid.uuid4(),
        conversation_id=body["conversation_id"],
        caller_id=user_id,
        call_type=body["call_type"],
        status=Call.Status.RINGING,
        started_at=now,
    )
    people = [
        CallParticipant(call=call, user_id=user_id, role="caller", state="joined", joined_at=now, call_started_at=now),
        *[
            CallParticipant(call=call, user_id=callee, role="callee", state="ringing", call_started_at=now)
            for callee in body["callee_ids"]
        ],
    ]
    events = _events(
        call.id,
        0,
        now,
        (Kind.INITIATED, user_id, call.call_type),
        *[(Kind.RANG, callee, "") for callee in body["callee_ids"]],
    )
    with transaction.atomic():
        call.save(force_insert=True)
        CallParticipant.objects.bulk_create(people)
        CallTimelineEvent.objects.bulk_create(events)
    return JsonResponse({"call_id": str(call.id)}, status=201)


@csrf_exempt
@require_POST
def floor_join(request, call_id):
    user_id = _user_id(request)
    if user_id is None:
        return _unauthorized()
    now = timezone.now()
    with transaction.atomic():
        Call.objects.filter(pk=call_id).update(status=Call.Status.ACTIVE, answered_at=now, updated_at=now)
        CallParticipant.objects.filter(call_id=call_id, user_id=user_id).update(state="joined", joined_at=now)
        CallTimelineEvent.objects.bulk_create(_events(call_id, 2, now, (Kind.ACCEPTED, user_id, "")))
    return JsonResponse({"call_id": str(call_id), "status": "active"})


@csrf_exempt
@require_POST
def floor_end(request, call_id):
    user_id = _user_id(request)
    if user_id is None:
        return _unauthorized()
    now = timezone.now()
    with transaction.atomic():
        Call.objects.filter(pk=call_id).update(
            status=Call.Status.ENDED, end_reason="hangup", ended_at=now, updated_at=now
        )
        CallParticipant.objects.filter(call_id=call_id).update(state="left", left_at=now)
        CallTimelineEvent.objects.bulk_create(
            _events(call_id, 3, now, (Kind.LEFT, user_id, "hangup"), (Kind.ENDED, user_id, "hangup"))
        )
    return JsonResponse({"call_id": str(call_id), "status": "ended"})
