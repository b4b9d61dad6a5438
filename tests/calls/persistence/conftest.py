"""Fixtures of the persistence tests: two members of a conversation the server has seen."""

import pytest

from calls import services
from tests.factories import make_conversation, make_user


@pytest.fixture
def pair(db_proxy, spool_path):
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    # A settled server has seen the conversation (so its members are in the snapshot cache).
    services.conversation_open(conversation_id=conversation.id, user_id=caller.id)
    return caller, callee, conversation
