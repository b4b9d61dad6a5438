"""README.md as written works: its walk-through commands and the lines `seed_demo` prints, run
in bash as they are printed, against a real daphne on this test's database.

The only change to what a reader pastes is the port: the service runs on a free port, given as
README.md says (``PORT`` for the walk-through, ``--base-url`` for seed_demo).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from bench.processes import ROOT, ServiceProcess
from calls.models import Call, Conversation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

README = (ROOT / "README.md").read_text(encoding="utf-8")
SEED_DEMO = ".venv/bin/python manage.py seed_demo"


def readme_block(after_heading: str) -> str:
    """The first ```sh block after the heading."""
    section = README.split(after_heading, 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def service(tmp_path):
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "JWT_SECRET": settings.JWT_SECRET,
        "SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
        "DB_STARTUP_MODE": "blocking",
        "PUSH_PROVIDER": "none",
    }
    process = ServiceProcess(env=env, log_path=tmp_path / "service.log")
    try:
        yield process.start()
    finally:
        process.stop()
        print(process.log_text()[-5000:])


def bash(script: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def seed_demo(service) -> str:
    assert SEED_DEMO in README, "the README's seed_demo command"
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--base-url", service.url],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "secureconnect.settings", **service.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def pasted_lines(output: str) -> str:
    """What seed_demo tells the reader to paste: from the API= line to the last command."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("API="))
    last = max(i for i, line in enumerate(lines) if line.startswith("curl "))
    return "\n".join(lines[first : last + 1]) + "\n"


def test_the_lines_seed_demo_prints_run_as_pasted(service):
    script = pasted_lines(seed_demo(service))
    assert "$ALICE_ACCESS_TOKEN" in script and "export ALICE_ACCESS_TOKEN=" in script
    result = bash(script + 'echo "tokens: ${#ALICE_ACCESS_TOKEN} ${#BOB_ACCESS_TOKEN} call: $CALL_ID"\n')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["active", "ended"], result.stdout + result.stderr
    call_id = re.search(r"call: (\S+)", lines[2]).group(1)
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.end_reason, call.caller.email) == ("ended", "hangup", "alice@example.com")


def test_the_readme_walk_through_runs_as_printed_after_seed_demo(service):
    seed_demo(service)
    script = readme_block("### Walk-through with curl")
    assert "API=http://127.0.0.1:${PORT:-8083}/v1" in script
    result = bash(script, PORT=str(service.port))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    status_after_join, status_after_end, timeline, duration, answer_rate, newest_conversation, replayed, logged_out = (
        lines
    )
    assert (status_after_join, status_after_end) == ("active", "ended"), result.stdout + result.stderr
    assert timeline == "initiated rang accepted ended", "the call's timeline, as the README says"
    assert "revoked" in replayed, "a spent refresh token replayed revokes the session"
    assert logged_out == "True"
    assert int(duration) >= 2, "the walk-through sleeps 2 s in the call"
    assert float(answer_rate) == 1.0
    assert Conversation.objects.filter(id=newest_conversation, participants__user__email="alice@example.com").exists()
    # The walk-through's conversation is seed_demo's: one direct conversation of Alice and Bob.
    pair = Conversation.objects.filter(type="direct", participants__user__email="alice@example.com").filter(
        participants__user__email="bob@example.com"
    )
    assert pair.count() == 1


def test_the_readme_walk_through_runs_on_a_fresh_database_too(service):
    result = bash(readme_block("### Walk-through with curl"), PORT=str(service.port))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["active", "ended"], result.stdout + result.stderr
