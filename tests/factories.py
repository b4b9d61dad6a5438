"""Small factories for tests: real rows, sensible defaults, override what matters."""

import itertools
import uuid
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import issue_token_pair
from calls import lifecycle
from calls.models import Call, CallParticipant, Conversation, ConversationParticipant

_counter = itertools.count(1)
DEFAULT_PASSWORD = "correct-horse-battery-staple"


def make_user(*, username=None, email=None, password=DEFAULT_PASSWORD, **fields) -> User:
    n = next(_counter)
    username = username or f"user{n}_{uuid.uuid4().hex[:6]}"
    email = email or f"{username}@example.test"
    return User.objects.create_user(username=username, email=email, password=password, **fields)


def make_conversation(*, members, created_by=None, type=Conversation.Type.DIRECT, title="") -> Conversation:
    created_by = created_by or members[0]
    conversation = Conversation.objects.create(type=type, title=title, created_by=created_by)
    for member in members:
        ConversationParticipant.objects.create(
            conversation=conversation,
            user=member,
            role=ConversationParticipant.Role.ADMIN if member == created_by else ConversationParticipant.Role.MEMBER,
        )
    return conversation


def make_call(
    *, caller, callees, conversation=None, call_type=Call.Type.VIDEO, started_at=None, status=None, talk_seconds=None
) -> Call:
    """A call saved as the lifecycle would leave it: ringing, or ended after ``talk_seconds``."""
    conversation = conversation or make_conversation(members=[caller, *callees])
    started_at = started_at or timezone.now()
    call, participants = lifecycle.new_call(
        call_id=uuid.uuid4(),
        conversation_id=conversation.id,
        caller_id=caller.id,
        callee_ids=[c.id for c in callees],
        call_type=call_type,
        at=started_at,
    )
    if talk_seconds is not None:
        answered_at = started_at + timedelta(seconds=3)
        lifecycle.accept(call, participants, user_id=callees[0].id, at=answered_at)
        lifecycle.end(call, participants, user_id=caller.id, at=answered_at + timedelta(seconds=talk_seconds))
    if status is not None:
        call.status = status
    call.save()
    CallParticipant.objects.bulk_create(participants)
    return call


def api_client_for(user) -> APIClient:
    """A DRF test client that sends the user's real access token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token_pair(user)['access_token']}")
    return client
