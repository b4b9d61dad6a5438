"""Device moved from accounts to push without touching its table: a device written before the
move is the same row, in the same table, read through ``push.models.Device`` after it."""

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest
from django.core.management import call_command

from tests.test_migrations import PG_ADMIN_DSN, ROOT


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "secureconnect.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.portable
@pytest.mark.django_db(transaction=True)  # SQLite's schema editor refuses to run inside a test's atomic block
@pytest.mark.parametrize(("app", "migration"), [("accounts", "0004"), ("push", "0001")])
def test_the_move_runs_no_sql(app, migration, capsys):
    call_command("sqlmigrate", app, migration)
    sql = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith("--")]
    assert sql in ([], ["BEGIN;", "COMMIT;"]), sql


def test_a_device_registered_before_the_move_is_the_same_row_after_it():
    name = f"secureconnect_push_move_{uuid.uuid4().hex[:8]}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        manage(url, "migrate", "accounts", "0003", "--no-input")
        created = manage(
            url,
            "shell",
            "-c",
            "from accounts.models import User; from push.models import Device; "
            "u = User.objects.create_user(email='mover@example.com', username='mover', password='x'); "
            "d = Device.objects.create(user=u, token='token-before-the-move', platform='android'); print(d.id)",
        )
        device_id = created.stdout.strip().splitlines()[-1]
        # As on a database the old code ran on (post_migrate made it from the state of accounts
        # 0003): Device's content type is accounts', and a staff member may see devices through it.
        manage(
            url,
            "shell",
            "-c",
            "from django.contrib.auth.models import Permission; "
            "from django.contrib.contenttypes.models import ContentType; from accounts.models import User; "
            "assert not ContentType.objects.filter(app_label='push').exists(); "
            "ct = ContentType.objects.get(app_label='accounts', model='device'); "
            "p = Permission.objects.get(content_type=ct, codename='view_device'); "
            "User.objects.get(email='mover@example.com').user_permissions.add(p)",
        )

        migrated = manage(url, "migrate", "--no-input")
        assert "Applying accounts.0004_device_moves_to_push... OK" in migrated.stdout
        assert "Applying push.0001_initial... OK" in migrated.stdout

        read = manage(
            url,
            "shell",
            "-c",
            f"from push.models import Device; d = Device.objects.get(id='{device_id}'); "
            "print(d.token, d.user.email, d.is_active)",
        )
        assert read.stdout.strip().splitlines()[-1] == "token-before-the-move mover@example.com True"
        allowed = manage(
            url,
            "shell",
            "-c",
            "from accounts.models import User; from django.contrib.contenttypes.models import ContentType; "
            "print(User.objects.get(email='mover@example.com').has_perm('push.view_device'), "
            "ContentType.objects.filter(model='device').count())",
        )
        assert allowed.stdout.strip().splitlines()[-1] == "True 1", "the permission moved with the model"
        with psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as db, db.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE '%%device%%'")
            assert [row[0] for row in cursor.fetchall()] == ["accounts_device"]
        db.close()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
