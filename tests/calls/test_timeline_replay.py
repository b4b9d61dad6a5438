"""The timeline goes through the persistence layer like every other call write: journaled while
the database is away (the test database behind a real TCP proxy the test takes down), replayed
once, and never duplicated by a replay that runs twice or a commit whose answer was lost."""

import psycopg2
import pytest
from django.db import connection

from calls import services
from calls.models import CallTimelineEvent
from calls.persistence import availability, replay
from calls.persistence.spool import get_spool
from tests.calls.persistence.outage import initiate, recover
from tests.factories import api_client_for, make_conversation, make_user

OUTCOMES = pytest.mark.parametrize("landed", [True, False], ids=["commit-landed-answer-lost", "commit-never-landed"])


@pytest.fixture
def pair(db_proxy, spool_path):
    """Two members of a conversation the server has seen (as in tests/calls/persistence/)."""
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    services.conversation_open(conversation_id=conversation.id, user_id=caller.id)
    return caller, callee, conversation


def timeline_behind_the_proxy(proxy, call_id) -> list[tuple[int, str]]:
    """(seq, kind) of every event row PostgreSQL holds for the call, on a connection straight to
    the server (the proxy may be down)."""
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    params.update(host=proxy.target[0], port=proxy.target[1])
    direct = psycopg2.connect(**params)
    try:
        with direct.cursor() as cursor:
            cursor.execute(
                "SELECT seq, kind FROM calls_calltimelineevent WHERE call_id = %s ORDER BY seq", [str(call_id)]
            )
            return cursor.fetchall()
    finally:
        direct.close()


def stored(call_id) -> list[tuple[int, str, str | None]]:
    return [
        (e.seq, e.kind, str(e.actor_id) if e.actor_id else None)
        for e in CallTimelineEvent.objects.filter(call_id=call_id).order_by("seq")
    ]


def test_a_call_made_while_the_database_was_away_has_its_timeline_in_the_database_once(pair, db_proxy):
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    services.call_join(call_id=call_id, user_id=callee.id)
    services.call_set_media(call_id=call_id, user_id=callee.id, is_muted=True)
    assert services.call_record_connection(call_id=call_id, user_id=caller.id, kind="connected").deferred
    ended = services.call_end(call_id=call_id, user_id=caller.id)
    assert ended.deferred and availability.current() == availability.LIMITED
    expected = [
        (0, "initiated", str(caller.id)),
        (1, "rang", str(callee.id)),
        (2, "accepted", str(callee.id)),
        (3, "audio_muted", str(callee.id)),
        (4, "connected", str(caller.id)),
        (5, "ended", str(caller.id)),
    ]

    # While the database is away the participants read the timeline from the journal.
    response = api_client_for(callee).get(f"/v1/calls/{call_id}")
    assert response.status_code == 200 and response.headers["X-Persistence"] == "deferred"
    assert [(e["seq"], e["kind"], e["actor_id"]) for e in response.json()["data"]["timeline"]] == expected
    assert timeline_behind_the_proxy(db_proxy, call_id) == []
    journaled = get_spool().latest(call_id)

    db_proxy.up()
    recover()
    assert availability.current() == availability.OPERATIONAL and get_spool().depth() == 0
    assert stored(call_id) == expected, "every journaled write replayed, each event once"
    assert timeline_behind_the_proxy(db_proxy, call_id) == [(seq, kind) for seq, kind, _ in expected]
    ended_event = CallTimelineEvent.objects.get(call_id=call_id, kind="ended")
    assert ended_event.at == ended.record.call.ended_at and ended_event.detail == "hangup"

    replay.replay_entry(journaled)  # a process that died before deleting the entry replays it again
    assert stored(call_id) == expected
    data = api_client_for(caller).get(f"/v1/calls/{call_id}").json()["data"]
    assert [(e["seq"], e["kind"], e["actor_id"]) for e in data["timeline"]] == expected


def test_replaying_every_entry_twice_duplicates_no_event(pair, db_proxy):
    """Each entry carries the timeline up to its write: a replay of an older entry after newer
    ones, or of the same entry again, inserts nothing that is already there."""
    caller, callee, conversation = pair
    db_proxy.down()
    call_id = initiate(caller, callee, conversation).record.call.id
    first = get_spool().latest(call_id)
    services.call_join(call_id=call_id, user_id=callee.id)
    second = get_spool().latest(call_id)
    db_proxy.up()
    for payload in (first, second, first, second):
        replay.replay_entry(payload)
    recover()
    replay.replay_entry(second)
    assert stored(call_id) == [
        (0, "initiated", str(caller.id)),
        (1, "rang", str(callee.id)),
        (2, "accepted", str(callee.id)),
    ]


@OUTCOMES
def test_a_write_whose_commit_outcome_is_unknown_leaves_each_event_once(pair, db_proxy, landed):
    """The join's COMMIT is cut: it landed with its events (answer lost) or never arrived. The
    journaled join is the same write computed again, with the same (call, seq): the replay
    converges to one row per event either way, and later writes continue the sequence."""
    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    cut = db_proxy.cut_at(b"COMMIT", deliver=landed)
    joined = services.call_join(call_id=call_id, user_id=callee.id)
    assert cut.is_set() and joined.deferred
    on_the_server = timeline_behind_the_proxy(db_proxy, call_id)
    assert on_the_server == (
        [(0, "initiated"), (1, "rang"), (2, "accepted")] if landed else [(0, "initiated"), (1, "rang")]
    )
    services.call_set_media(call_id=call_id, user_id=callee.id, is_video_on=False)  # still journaled

    db_proxy.up()
    recover()
    assert get_spool().depth() == 0 and get_spool().quarantined_count() == 0
    services.call_leave(call_id=call_id, user_id=callee.id)  # on the database again
    assert stored(call_id) == [
        (0, "initiated", str(caller.id)),
        (1, "rang", str(callee.id)),
        (2, "accepted", str(callee.id)),
        (3, "video_off", str(callee.id)),
        (4, "left", str(callee.id)),
        (5, "ended", str(callee.id)),
    ]


def test_a_connection_that_cannot_be_recorded_is_logged_not_raised(pair, db_proxy, caplog):
    """Signaling calls ``call_record_connection`` as sockets come and go: with the database away
    and the call known nowhere locally, it answers None and signaling goes on."""
    from django.core.cache import cache

    caller, callee, conversation = pair
    call_id = initiate(caller, callee, conversation).record.call.id
    cache.clear()  # the snapshot is gone (a Redis restarted meanwhile)
    db_proxy.down()
    assert services.call_record_connection(call_id=call_id, user_id=callee.id, kind="connected") is None
    assert "connected of user" in caplog.text and "not on the timeline" in caplog.text
    assert get_spool().depth() == 0
    db_proxy.up()
    recover()
    assert services.call_record_connection(call_id=call_id, user_id=callee.id, kind="connected") is not None
    assert stored(call_id)[-1] == (2, "connected", str(callee.id))
