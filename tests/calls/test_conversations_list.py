"""GET /v1/conversations: newest first, a page at a time behind a signed cursor, with a fixed
number of queries whatever the page size or the number of members."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calls import selectors
from calls.models import Conversation
from tests.factories import api_client_for, make_conversation, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.portable]


@pytest.fixture
def me():
    return make_user()


def conversations_of(me, count: int, *, members_each: int = 1) -> list[str]:
    """``count`` conversations of ``me`` (newest last made), each with ``members_each`` others."""
    made = []
    for index in range(count):
        others = [make_user() for _ in range(members_each)]
        kind = Conversation.Type.DIRECT if members_each == 1 else Conversation.Type.GROUP
        made.append(str(make_conversation(members=[me, *others], type=kind, title=f"c{index}").id))
    return made


def walk(client, **params) -> tuple[list[str], int]:
    """Every conversation id, following next_cursor to the end; and the number of pages."""
    seen, pages, cursor = [], 0, None
    while pages < 50:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/v1/conversations", query)
        assert response.status_code == 200, response.content
        data = response.json()["data"]
        seen += [c["conversation_id"] for c in data["conversations"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError("the cursor never ended")


def test_pages_cover_every_conversation_once_newest_first(me):
    made = conversations_of(me, 7)
    conversations_of(make_user(), 3)  # someone else's: never listed
    ids, pages = walk(api_client_for(me), limit=3)
    newest_first = [str(c.id) for c in Conversation.objects.filter(id__in=made).order_by("-created_at", "-id")]
    assert ids == newest_first
    assert pages == 3


def test_one_page_holds_everything_by_default_with_a_null_cursor(me):
    made = conversations_of(me, 3, members_each=2)
    data = api_client_for(me).get("/v1/conversations").json()["data"]
    assert set(data) == {"conversations", "next_cursor"}
    assert data["next_cursor"] is None
    assert sorted(c["conversation_id"] for c in data["conversations"]) == sorted(made)
    assert all(len(c["members"]) == 3 for c in data["conversations"])


def test_same_created_at_is_ordered_by_id_and_nothing_is_skipped(me):
    made = conversations_of(me, 5)
    moment = Conversation.objects.get(id=made[0]).created_at
    Conversation.objects.filter(id__in=made).update(created_at=moment)
    ids, _ = walk(api_client_for(me), limit=2)
    assert ids == sorted(made, reverse=True)


def queries_for_a_page(me, limit: int) -> int:
    connection.ensure_connection()
    with CaptureQueriesContext(connection) as captured:
        page = selectors.conversation_list(user_id=me.id, limit=limit)
        for conversation in page.conversations:
            selectors.conversation_members(conversation)
    return len(captured)


def test_a_page_costs_two_queries_whatever_its_size_and_its_members(me):
    conversations_of(me, 2)
    assert queries_for_a_page(me, 2) == 2
    conversations_of(me, 12, members_each=4)
    assert queries_for_a_page(me, 14) == 2
    assert queries_for_a_page(me, 5) == 2


def test_the_view_makes_the_same_number_of_queries_for_small_and_large_pages(me):
    client = api_client_for(me)
    conversations_of(me, 2)
    client.get("/v1/conversations")  # warm anything cached per user (token checks, throttles)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/v1/conversations").status_code == 200
    conversations_of(me, 20, members_each=3)
    with CaptureQueriesContext(connection) as large:
        assert client.get("/v1/conversations").status_code == 200
    assert len(large) == len(small)


@pytest.mark.parametrize(
    "params",
    [{"cursor": "not-a-cursor"}, {"limit": "0"}, {"limit": "101"}, {"limit": "many"}],
)
def test_bad_paging_parameters_are_400_in_the_envelope(me, params):
    response = api_client_for(me).get("/v1/conversations", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    assert set(body["error"]["details"]) & {"cursor", "limit"}


def test_a_history_cursor_is_not_a_conversations_cursor(me):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import make_call

    peer = make_user()
    conversation = make_conversation(members=[me, peer])
    for minutes in range(2):
        make_call(
            caller=me, callees=[peer], conversation=conversation, started_at=timezone.now() - timedelta(minutes=minutes)
        )
    client = api_client_for(me)
    history_cursor = client.get("/v1/calls", {"limit": 1}).json()["data"]["next_cursor"]
    assert history_cursor
    response = client.get("/v1/conversations", {"cursor": history_cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["details"]
