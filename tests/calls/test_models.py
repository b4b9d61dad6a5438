"""Model constraints the database itself enforces."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from calls.models import Call, CallParticipant, ConversationParticipant
from tests.factories import make_call, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


def test_one_participant_row_per_user_per_call():
    alice, bob = make_user(), make_user()
    call = make_call(caller=alice, callees=[bob])
    with pytest.raises(IntegrityError), transaction.atomic():
        CallParticipant.objects.create(call=call, user=bob, role="callee", call_started_at=call.started_at)
    assert CallParticipant.objects.filter(call=call, user=bob).count() == 1


def test_one_membership_row_per_user_per_conversation():
    alice, bob = make_user(), make_user()
    conversation = make_conversation(members=[alice, bob])
    with pytest.raises(IntegrityError), transaction.atomic():
        ConversationParticipant.objects.create(conversation=conversation, user=bob)


def test_a_call_cannot_end_before_it_started():
    alice, bob = make_user(), make_user()
    call = make_call(caller=alice, callees=[bob])
    call.ended_at = call.started_at - timedelta(seconds=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        call.save()


def test_ids_are_uuids_generated_by_the_service():
    alice, bob = make_user(), make_user()
    call = make_call(caller=alice, callees=[bob])
    assert isinstance(alice.id, uuid.UUID) and isinstance(call.id, uuid.UUID)
    assert Call.objects.get(pk=call.id).started_at <= timezone.now()


def test_users_log_in_with_a_unique_email():
    make_user(email="same@example.test")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_user(email="same@example.test")
