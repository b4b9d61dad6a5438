"""The operations commands, run as an operator runs them (`manage.py <command> ...` in this
process): what --help says, what success prints, and that a failure exits non-zero with one line
that says why. Outages are real: the database behind a proxy the test takes down."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import ManagementUtility
from django.db import connection
from django.utils import timezone

from accounts.models import User
from accounts.services import user_login
from calls import selectors, services
from calls.management.commands.seed_demo import DEMO_GROUP_TITLE, DEMO_USERS
from calls.models import Call, Conversation
from calls.persistence.replay import replay_entry
from calls.persistence.spool import get_spool
from tests.factories import make_call, make_conversation, make_user

# Commands close every connection when they finish, as manage.py does: each test needs its own
# committed data rather than a transaction rolled back around it.
pytestmark = pytest.mark.django_db(transaction=True)

COMMANDS = ("wait_for_db", "db_status", "replay_spool", "expire_calls", "seed_demo", "call_stats")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def reason(self) -> str:
        """The one CommandError line a failure prints (log lines may come before it)."""
        lines = [line for line in self.err.splitlines() if line.startswith("CommandError: ")]
        assert len(lines) == 1, self.err
        assert self.err.strip().splitlines()[-1] == lines[0]
        return lines[0].removeprefix("CommandError: ")


@pytest.fixture
def manage(capsys):
    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            ManagementUtility(["manage.py", *argv]).execute()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# --- --help --------------------------------------------------------------------------------------

HELP = {
    "wait_for_db": ("Wait until the database accepts connections", ["--max-tries", "--base-delay", "--max-delay"]),
    "db_status": ("Check the database once now", ["--json"]),
    "replay_spool": ("Replay the call journal (spool) into the database", ["--quarantined", "--discard-quarantined"]),
    "expire_calls": ("Mark callees who have rung longer than CALL_RING_TIMEOUT as missed", []),
    "seed_demo": ("Create demo accounts with published passwords", ["--allow-production", "--base-url"]),
    "call_stats": ("Print the call analytics of GET /v1/calls/analytics", ["--user", "--since", "--until", "--json"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_says_what_the_command_does(manage, command):
    summary, options = HELP[command]
    result = manage(command, "--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert summary in text
    for option in options:
        assert option in text


def test_every_command_of_the_app_is_covered_here():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "calls" / "management" / "commands"
    assert {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} == set(COMMANDS)


# --- wait_for_db ---------------------------------------------------------------------------------


def test_wait_for_db_reports_the_ready_database(manage):
    result = manage("wait_for_db", "--max-tries", "1")
    assert result.code == 0
    assert result.out.startswith("PostgreSQL is ready (PostgreSQL ")


def test_wait_for_db_gives_up_after_its_tries_with_the_reason(manage, db_proxy):
    db_proxy.down()
    result = manage("wait_for_db", "--max-tries", "2", "--base-delay", "0", "--max-delay", "0")
    assert result.code == 1
    assert result.reason.startswith("Could not connect to PostgreSQL after 2 attempts: ")


def test_wait_for_db_does_not_retry_a_database_that_does_not_exist(manage, db_proxy):
    original = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = "secureconnect_no_such_database"
    try:
        result = manage("wait_for_db", "--max-tries", "5", "--base-delay", "30")
    finally:
        connection.settings_dict["NAME"] = original
    assert result.code == 1
    assert result.reason.startswith("PostgreSQL refused the connection: ")
    assert "does not exist" in result.reason


def test_wait_for_db_refuses_zero_tries(manage):
    result = manage("wait_for_db", "--max-tries", "0")
    assert result.code == 1
    assert result.reason == "--max-tries must be at least 1"


# --- db_status -----------------------------------------------------------------------------------


def test_db_status_reports_operational(manage, spool_path):
    result = manage("db_status")
    assert result.code == 0
    rows = dict(line.split(None, 1) for line in result.out.splitlines())
    assert rows["state"] == "operational"
    assert rows["engine"] == "PostgreSQL"
    assert rows["server_version"].startswith("PostgreSQL ")
    assert (rows["error"], rows["spool_depth"], rows["spool_path"]) == ("-", "0", str(spool_path))
    assert rows["spool_quarantined"] == "0"


def test_db_status_json(manage, spool_path):
    result = manage("db_status", "--json")
    assert result.code == 0
    report = json.loads(result.out)
    assert (report["state"], report["engine"], report["error"], report["spool_depth"]) == (
        "operational",
        "PostgreSQL",
        None,
        0,
    )


def test_db_status_exits_1_when_limited_and_says_why(manage, db_proxy, spool_path):
    db_proxy.down()
    result = manage("db_status", "--json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["state"] == "limited"
    assert report["error"]  # the driver's first line, e.g. "connection ... refused"
    assert "\n" not in report["error"]
    assert result.reason == f"PostgreSQL is unavailable (limited): {report['error']}"


# --- replay_spool --------------------------------------------------------------------------------


@pytest.fixture
def journaled_call(db_proxy, spool_path):
    """A call started while the database was away: in the spool, not in the database."""
    caller, callee = make_user(), make_user()
    conversation = make_conversation(members=[caller, callee])
    services.conversation_open(conversation_id=conversation.id, user_id=caller.id)
    db_proxy.down()
    result = services.call_initiate(
        caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="video"
    )
    assert result.deferred and get_spool().depth() == 1
    return result.record.call.id


def test_replay_spool_writes_the_journal_to_the_database(manage, db_proxy, journaled_call):
    db_proxy.up()
    result = manage("replay_spool")
    assert result.code == 0
    assert result.out.strip() == "Replayed 1 journaled call write(s); 0 remain"
    assert Call.objects.get(pk=journaled_call).status == "ringing"


def test_replay_spool_with_nothing_journaled(manage, spool_path):
    result = manage("replay_spool")
    assert result.code == 0
    assert result.out.strip() == "Replayed 0 journaled call write(s); 0 remain"


def test_replay_spool_stops_keeping_the_journal_when_the_database_is_away(manage, db_proxy, journaled_call):
    result = manage("replay_spool")
    assert result.code == 1
    assert result.reason.startswith("Replay stopped: PostgreSQL is unavailable (")
    assert result.reason.endswith("); 1 of 1 entries remain journaled")
    assert get_spool().depth() == 1


@pytest.fixture
def quarantined_entry(spool_path):
    """A journaled write no retry can apply (its payload lacks the call), quarantined by a replay."""
    spool = get_spool()
    with spool.write_transaction() as tx:
        seq = tx.append(call_id="c0ffee", conversation_id="c", status="ringing", operation="initiate", payload={})
    assert spool.replay(replay_entry) == 0 and spool.quarantined_count() == 1
    return seq


def test_db_status_lists_quarantined_entries_and_stays_operational(manage, quarantined_entry):
    result = manage("db_status")
    assert result.code == 0
    assert "spool_quarantined 1" in result.out
    [line] = [line for line in result.out.splitlines() if line.startswith("quarantined ")]
    assert f"{quarantined_entry} call c0ffee (initiate, quarantined " in line and line.endswith("KeyError: 'call'")


def test_replay_spool_keeps_retrying_out_of_the_plain_replay(manage, quarantined_entry):
    result = manage("replay_spool")
    assert result.code == 0
    assert result.out.splitlines() == [
        "Replayed 0 journaled call write(s); 0 remain",
        "1 quarantined (replay_spool --quarantined retries them)",
    ]


def test_replay_spool_quarantined_exits_1_while_an_entry_still_cannot_apply(manage, quarantined_entry):
    result = manage("replay_spool", "--quarantined")
    assert result.code == 1
    assert result.out.splitlines()[0] == "Applied 0 quarantined call write(s); 1 remain quarantined"
    assert result.reason == "1 quarantined call write(s) still cannot be applied"
    assert get_spool().quarantined()[0]["attempts"] == 2


def test_replay_spool_quarantined_with_nothing_quarantined(manage, spool_path):
    result = manage("replay_spool", "--quarantined")
    assert result.code == 0
    assert result.out.strip() == "Applied 0 quarantined call write(s); 0 remain quarantined"


def test_replay_spool_discards_one_quarantined_entry_and_prints_it(manage, quarantined_entry):
    result = manage("replay_spool", "--discard-quarantined", str(quarantined_entry))
    assert result.code == 0
    assert result.out.strip() == (
        f"Discarded quarantined call write {quarantined_entry} (call c0ffee, initiate); its payload was: {{}}"
    )
    assert get_spool().quarantined_count() == 0
    again = manage("replay_spool", "--discard-quarantined", str(quarantined_entry))
    assert again.code == 1 and again.reason == f"No quarantined call write has id {quarantined_entry}"


# --- expire_calls --------------------------------------------------------------------------------


def test_expire_calls_marks_calls_past_the_ring_timeout_missed(manage, settings):
    settings.CALL_RING_TIMEOUT = 60
    caller, callee = make_user(), make_user()
    overdue = make_call(caller=caller, callees=[callee], started_at=timezone.now() - timedelta(seconds=120))
    still_ringing = make_call(caller=caller, callees=[callee], started_at=timezone.now())
    result = manage("expire_calls")
    assert result.code == 0
    assert result.out.splitlines() == [
        "Marked 1 unanswered call(s) as missed",
        "Settled 0 call(s) whose participants' connections were lost",
    ]
    assert Call.objects.get(pk=overdue.pk).status == "missed"
    assert Call.objects.get(pk=still_ringing.pk).status == "ringing"


def test_expire_calls_ends_answered_calls_nobody_is_connected_to(manage, settings):
    settings.CALL_CONNECT_TIMEOUT = 1
    caller, callee = make_user(), make_user()
    call = make_call(caller=caller, callees=[callee], started_at=timezone.now() - timedelta(seconds=30))
    services.call_join(call_id=call.id, user_id=callee.id)
    Call.objects.filter(pk=call.pk).update(answered_at=timezone.now() - timedelta(seconds=5))
    result = manage("expire_calls")
    assert result.code == 0
    assert result.out.splitlines()[1] == "Settled 1 call(s) whose participants' connections were lost"
    assert Call.objects.get(pk=call.pk).end_reason == "connection_lost"


def test_expire_calls_says_why_it_could_not(manage, db_proxy):
    db_proxy.down()
    result = manage("expire_calls")
    assert result.code == 1
    assert result.reason.startswith("Could not expire calls: ")


# --- seed_demo -----------------------------------------------------------------------------------


def test_seed_demo_creates_users_who_can_log_in_with_the_printed_passwords(manage):
    result = manage("seed_demo")
    assert result.code == 0
    for spec in DEMO_USERS:
        assert re.search(rf"{re.escape(spec.email)} +password {re.escape(spec.password)} ", result.out)
        assert user_login(email=spec.email, password=spec.password).user.username == spec.username


def test_seed_demo_creates_a_direct_conversation_of_alice_and_bob_and_a_group(manage):
    result = manage("seed_demo")
    alice, bob = (User.objects.get(email=spec.email) for spec in DEMO_USERS[:2])
    direct = Conversation.objects.get(type="direct")
    assert {p.user_id for p in direct.participants.all()} == {alice.pk, bob.pk}
    group = Conversation.objects.get(type="group", title=DEMO_GROUP_TITLE)
    assert group.participants.count() == len(DEMO_USERS)
    # The printed call command names the conversation and the callee.
    assert f'"conversation_id":"{direct.pk}","callee_ids":["{bob.pk}"]' in result.out


def test_seed_demo_prints_a_call_that_the_service_accepts(manage):
    manage("seed_demo")
    alice, bob = (User.objects.get(email=spec.email) for spec in DEMO_USERS[:2])
    direct = Conversation.objects.get(type="direct")
    call = services.call_initiate(
        caller_id=alice.pk, conversation_id=direct.pk, callee_ids=[bob.pk], call_type="video"
    ).record.call
    assert call.status == "ringing"


def test_seed_demo_twice_changes_nothing(manage):
    first = manage("seed_demo")
    ids = sorted(User.objects.values_list("pk", flat=True))
    conversations = sorted(Conversation.objects.values_list("pk", flat=True))
    second = manage("seed_demo")
    assert (first.code, second.code) == (0, 0)
    assert sorted(User.objects.values_list("pk", flat=True)) == ids
    assert sorted(Conversation.objects.values_list("pk", flat=True)) == conversations
    assert second.out.count("[already there]") == len(DEMO_USERS) + 2
    assert "[created]" not in second.out


def test_seed_demo_gives_a_demo_account_its_published_password_back(manage):
    manage("seed_demo")
    bob = User.objects.get(email="bob@example.com")
    bob.set_password("changed-by-someone-trying-the-demo")
    bob.save()
    result = manage("seed_demo")
    assert re.search(r"bob@example.com +password a-long-passphrase-bob ", result.out)
    assert "[password reset]" in result.out
    assert user_login(email="bob@example.com", password="a-long-passphrase-bob")


def test_seed_demo_refuses_production(manage, settings):
    settings.IS_PRODUCTION = True
    result = manage("seed_demo")
    assert result.code == 1
    assert result.reason.startswith("Refusing to create accounts with published passwords with ENV=production")
    assert not User.objects.exists()


def test_seed_demo_in_production_when_asked_to(manage, settings):
    settings.IS_PRODUCTION = True
    assert manage("seed_demo", "--allow-production").code == 0
    assert User.objects.count() == len(DEMO_USERS)


def test_seed_demo_says_which_field_is_taken(manage):
    make_user(username="bob", email="a-real-bob@example.org")
    result = manage("seed_demo")
    assert result.code == 1
    assert result.reason == (
        "Could not seed the demo data: An account with that email or username already exists. "
        "username: This username is taken."
    )


def test_seed_demo_says_why_when_the_database_is_away(manage, db_proxy):
    db_proxy.down()
    result = manage("seed_demo")
    assert result.code == 1
    assert result.reason.startswith("Could not seed the demo data in PostgreSQL: ")


# --- call_stats ----------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def calls():
    """Alice: two answered calls (60 s, 120 s) in January, one missed in February. Bob: only
    the first. Carol: nothing."""
    alice, bob, carol = make_user(email="alice@stats.test"), make_user(), make_user()
    make_call(caller=alice, callees=[bob], started_at=at("2025-01-10T12:00:00"), talk_seconds=60)
    make_call(caller=alice, callees=[carol], started_at=at("2025-01-31T23:59:59"), talk_seconds=120)
    make_call(caller=alice, callees=[carol], started_at=at("2025-02-01T00:00:00"), status="missed", call_type="audio")
    return alice, bob, carol


def test_call_stats_prints_the_whole_service_as_a_table(manage, calls):
    result = manage("call_stats")
    assert result.code == 0
    rows = dict(line.rsplit(None, 1) for line in result.out.splitlines()[1:] if line.strip())
    assert result.out.startswith("Call analytics for every user, the beginning to now")
    assert (rows["Calls"], rows["Answered"], rows["Missed"]) == ("3", "2", "1")
    assert rows["Answer rate                   0.6667"] == "(66.7%)"
    assert (rows["Average duration (s)"], rows["Total talk time (s)"]) == ("90.0", "180")
    assert (rows["Median duration (s)"], rows["95th percentile duration (s)"]) == ("60", "120")
    assert (rows["ended"], rows["missed"], rows["ringing"]) == ("2", "1", "0")
    assert (rows["audio"], rows["video"]) == ("1", "2")


def test_call_stats_json_is_the_apis_analytics(manage, calls):
    result = manage("call_stats", "--json")
    assert result.code == 0
    assert json.loads(result.out) == selectors.call_analytics()


@pytest.mark.parametrize("by", ["email", "id"])
def test_call_stats_for_one_user(manage, calls, by):
    _, bob, _ = calls
    result = manage("call_stats", "--user", bob.email.upper() if by == "email" else str(bob.pk), "--json")
    assert result.code == 0
    stats = json.loads(result.out)
    assert (stats["total"], stats["total_talk_seconds"]) == (1, 60)
    assert stats == selectors.call_analytics(user_id=bob.pk)


def test_call_stats_names_the_user_in_the_table(manage, calls):
    alice, _, _ = calls
    result = manage("call_stats", "--user", "alice@stats.test")
    assert result.out.splitlines()[0] == f"Call analytics for alice@stats.test ({alice.pk}), the beginning to now"


@pytest.mark.parametrize(
    ("since", "until", "total"),
    [
        ("2025-01-01", "2025-02-01", 2),  # dates are midnight UTC; until is exclusive
        ("2025-02-01", None, 1),
        (None, "2025-01-31T23:59:59Z", 1),
        ("2025-01-31T23:59:59+00:00", "2025-02-01T00:00:01", 2),
        ("2025-01-31T19:00:00-05:00", None, 1),  # an offset is honoured: midnight UTC, inclusive
    ],
)
def test_call_stats_window(manage, calls, since, until, total):
    argv = ["call_stats", "--json"]
    argv += ["--since", since] if since else []
    argv += ["--until", until] if until else []
    result = manage(*argv)
    assert result.code == 0, result.err
    assert json.loads(result.out)["total"] == total


def test_call_stats_table_shows_the_window(manage, calls):
    result = manage("call_stats", "--since", "2025-01-01", "--until", "2025-02-01")
    assert result.out.splitlines()[0] == (
        "Call analytics for every user, 2025-01-01T00:00:00+00:00 to 2025-02-01T00:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--since", "last tuesday"], "--since: Datetime has wrong format."),
        (["--until", "2025-13-01"], "--until: Datetime has wrong format."),
        (["--since", "2025-02-01", "--until", "2025-01-01"], "--until: until must be after since."),
        (["--user", "nobody@example.com"], "--user: no user with the email 'nobody@example.com'"),
        (["--user", "00000000-0000-0000-0000-000000000000"], "--user: no user with the id 00000000-"),
    ],
)
def test_call_stats_refuses_bad_input_with_one_line(manage, calls, argv, reason):
    result = manage("call_stats", *argv)
    assert result.code == 1
    assert result.reason.startswith(reason)
    assert result.out == ""


def test_call_stats_says_why_when_the_database_is_away(manage, db_proxy):
    db_proxy.down()
    result = manage("call_stats", "--user", str(uuid.uuid4()))
    assert result.code == 1
    assert result.reason.startswith("Could not read the call analytics from PostgreSQL: ")
