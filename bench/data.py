"""Rows for the benchmarks, written through the ORM of the benchmark's own database: people
with access tokens, a conversation per pair, and active calls to signal in."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from bench.common import JWT_SECRET


def setup_django(database_url: str) -> None:
    """Configure Django in this process on the benchmark's database (call once, before any
    model import). The orchestrator never serves, so no background thread starts."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "secureconnect.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["JWT_SECRET"] = JWT_SECRET
    os.environ["DB_STARTUP_MODE"] = "off"
    os.environ["PUSH_PROVIDER"] = "none"
    os.environ["LOG_LEVEL"] = "WARNING"
    for name in ("REDIS_URL", "SPOOL_PATH"):
        os.environ.pop(name, None)
    import django

    django.setup()


@dataclass
class Person:
    id: str
    token: str


@dataclass
class Pair:
    caller: Person
    callee: Person
    conversation_id: str
    call_id: str | None = None


def make_pairs(count: int, *, label: str, with_calls: bool = False) -> list[Pair]:
    """``count`` (caller, callee) pairs, each with a direct conversation of their own and, with
    ``with_calls``, an active call between them (answered, so the ringing timeout never ends it)."""
    from django.utils import timezone

    from accounts.models import User
    from accounts.tokens import issue_access_token
    from calls import lifecycle
    from calls.models import Call, CallParticipant, Conversation, ConversationParticipant

    run = uuid.uuid4().hex[:6]
    users = []
    for n in range(2 * count):
        user = User(username=f"{label}{run}_{n}"[:30], email=f"{label}.{run}.{n}@bench.test")
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users, batch_size=1000)
    conversations, members, calls, participants, pairs = [], [], [], [], []
    now = timezone.now()
    for n in range(count):
        caller, callee = users[2 * n], users[2 * n + 1]
        conversation = Conversation(type=Conversation.Type.DIRECT, created_by_id=caller.id)
        conversations.append(conversation)
        members += [
            ConversationParticipant(
                conversation=conversation, user_id=caller.id, role=ConversationParticipant.Role.ADMIN
            ),
            ConversationParticipant(conversation=conversation, user_id=callee.id),
        ]
        pair = Pair(
            caller=Person(str(caller.id), _token(issue_access_token, caller)),
            callee=Person(str(callee.id), _token(issue_access_token, callee)),
            conversation_id=str(conversation.id),
        )
        if with_calls:
            call, people = lifecycle.new_call(
                call_id=uuid.uuid4(),
                conversation_id=conversation.id,
                caller_id=caller.id,
                callee_ids=[callee.id],
                call_type=Call.Type.VIDEO,
                at=now,
            )
            lifecycle.accept(call, people, user_id=callee.id, at=now)
            calls.append(call)
            participants += people
            pair.call_id = str(call.id)
        pairs.append(pair)
    Conversation.objects.bulk_create(conversations, batch_size=1000)
    ConversationParticipant.objects.bulk_create(members, batch_size=1000)
    Call.objects.bulk_create(calls, batch_size=1000)
    CallParticipant.objects.bulk_create(participants, batch_size=1000)
    return pairs


def _token(issue, user) -> str:
    return issue(user_id=user.id, email=user.email, username=user.username, role="user")


def close_connections() -> None:
    from django.db import connections

    connections.close_all()
