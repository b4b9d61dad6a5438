"""One direct conversation per pair: the service, the API's 200, simultaneous creates on the
real database, and the migration that fills in the key for existing rows without deleting any."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED

from calls import services
from calls.models import Conversation, ConversationParticipant, direct_key_for
from tests.factories import api_client_for, make_user


def create_direct(creator, other):
    return services.conversation_create(creator_id=creator.id, type="direct", member_ids=[other.id])


@pytest.mark.django_db
@pytest.mark.portable
def test_creating_an_existing_direct_conversation_returns_it_whoever_asks():
    alice, bob = make_user(), make_user()
    first, created = create_direct(alice, bob)
    again, created_again = create_direct(alice, bob)
    reverse, created_reverse = create_direct(bob, alice)
    assert (created, created_again, created_reverse) == (True, False, False)
    assert first.pk == again.pk == reverse.pk
    assert first.direct_key == direct_key_for(bob.id, alice.id)
    assert Conversation.objects.filter(participants__user=alice).filter(participants__user=bob).count() == 1


@pytest.mark.django_db
@pytest.mark.portable
def test_groups_of_the_same_people_are_never_merged():
    alice, bob = make_user(), make_user()
    one, _ = services.conversation_create(creator_id=alice.id, type="group", title="a", member_ids=[bob.id])
    two, created = services.conversation_create(creator_id=alice.id, type="group", title="a", member_ids=[bob.id])
    assert created is True and one.pk != two.pk
    assert one.direct_key is None and two.direct_key is None


@pytest.mark.django_db
@pytest.mark.portable
def test_the_api_answers_201_then_200_with_the_same_conversation():
    alice, bob = make_user(), make_user()
    body = {"type": "direct", "member_ids": [str(bob.id)]}
    created = api_client_for(alice).post("/v1/conversations", body, format="json")
    existing = api_client_for(alice).post("/v1/conversations", {**body, "title": "ignored"}, format="json")
    from_bob = api_client_for(bob).post("/v1/conversations", {"type": "direct", "member_ids": [str(alice.id)]})
    assert (created.status_code, existing.status_code, from_bob.status_code) == (201, 200, 200)
    ids = {r.json()["data"]["conversation_id"] for r in (created, existing, from_bob)}
    assert len(ids) == 1
    assert existing.json()["data"]["title"] == ""


@pytest.mark.django_db
@pytest.mark.portable
def test_the_database_refuses_a_second_row_with_the_same_key():
    from django.db import IntegrityError, transaction

    alice, bob = make_user(), make_user()
    create_direct(alice, bob)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.create(type="direct", created_by=bob, direct_key=direct_key_for(alice.id, bob.id))


def run_at_the_same_instant(*actions):
    """Each action on its own thread and database connection, released by one barrier."""
    barrier = threading.Barrier(len(actions))
    results = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait(5)
            results[index] = action()
        except Exception as exc:  # reported to the test, which fails on it
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


# SERIALIZABLE (the suite's and CockroachDB's level): the loser gets 40001 and its retry finds the
# winner's row. READ COMMITTED: nothing but the unique constraint stops the second insert, and the
# loser answers with the winner's conversation after the unique violation.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("isolation", ["serializable", "read-committed"])
@pytest.mark.parametrize("round_", range(3))
def test_two_simultaneous_creates_of_one_pair_make_one_conversation(isolation, round_, monkeypatch):
    assert connection.vendor == "postgresql", "the concurrency test needs the real PostgreSQL server"
    if isolation == "read-committed":
        # Each thread opens its own connection from these settings (and the suite's are restored).
        options = {**connection.settings_dict["OPTIONS"], "isolation_level": ISOLATION_LEVEL_READ_COMMITTED}
        monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    alice, bob = make_user(), make_user()
    # Hold each create's first insert until both have looked for an existing row and found none:
    # the two transactions really overlap, whatever the threads' scheduling.
    both_checked = threading.Barrier(2)
    first_inserts = []
    insert = Conversation.objects.create

    def insert_when_both_checked(**fields):
        if len(first_inserts) < 2:
            first_inserts.append(threading.get_ident())
            both_checked.wait(10)
        return insert(**fields)

    monkeypatch.setattr(Conversation.objects, "create", insert_when_both_checked)
    results = run_at_the_same_instant(lambda: create_direct(alice, bob), lambda: create_direct(bob, alice))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(first_inserts)) == 2, "both creates reached the insert"
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].pk == results[1][0].pk
    pair = Conversation.objects.filter(type="direct", participants__user=alice).filter(participants__user=bob)
    assert pair.count() == 1
    assert ConversationParticipant.objects.filter(conversation=pair.get()).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_keys_the_oldest_of_existing_duplicates_and_deletes_nothing():
    executor = MigrationExecutor(connection)
    executor.migrate([("calls", "0002_end_reason_connection_lost")])
    old_apps = executor.loader.project_state([("calls", "0002_end_reason_connection_lost")]).apps
    OldConversation = old_apps.get_model("calls", "Conversation")
    OldMember = old_apps.get_model("calls", "ConversationParticipant")
    alice, bob, carol = make_user(), make_user(), make_user()

    def conversation(type_, *people):
        row = OldConversation.objects.create(type=type_, created_by_id=people[0].id)
        for person in people:
            OldMember.objects.create(conversation_id=row.id, user_id=person.id)
        return row.id

    oldest = conversation("direct", alice, bob)
    duplicate = conversation("direct", bob, alice)
    other_pair = conversation("direct", alice, carol)
    group = conversation("group", alice, bob)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    finally:
        connections.close_all()
    keys = dict(Conversation.objects.values_list("id", "direct_key"))
    assert set(keys) == {oldest, duplicate, other_pair, group}, "every conversation is kept"
    assert keys[oldest] == direct_key_for(alice.id, bob.id)
    assert keys[duplicate] is None and keys[group] is None
    assert keys[other_pair] == direct_key_for(alice.id, carol.id)
    assert create_direct(bob, alice) == (Conversation.objects.get(pk=oldest), False)
