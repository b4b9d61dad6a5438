"""Store every email in its canonical form (``accounts.emails``: NFKC, then case folding).

Rows whose canonical forms collide are never merged or deleted: in each group, the row already
stored in canonical form keeps the address, else the one that joined first is canonicalised;
the others keep their email as it is (they can no longer log in with it, since log-in compares
canonical forms) and are listed in a warning, for an operator to resolve (rename or disable).
"""

import logging
from collections import defaultdict

from django.db import migrations

from accounts.emails import canonical_email

logger = logging.getLogger("accounts.migrations")


def canonicalise_emails(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    groups = defaultdict(list)
    for row in User.objects.order_by("date_joined", "pk").values("pk", "email", "date_joined"):
        groups[canonical_email(row["email"])].append(row)
    collisions = []
    for canonical, rows in groups.items():
        keeper = next((row for row in rows if row["email"] == canonical), rows[0])
        if keeper["email"] != canonical:
            User.objects.filter(pk=keeper["pk"]).update(email=canonical)
        collisions.extend((row["pk"], row["email"], canonical) for row in rows if row is not keeper)
    for pk, email, canonical in collisions:
        logger.warning(
            "accounts 0003: user %s keeps the email %r unchanged: its canonical form %r belongs to another account",
            pk,
            email,
            canonical,
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_device")]

    operations = [migrations.RunPython(canonicalise_emails, migrations.RunPython.noop, elidable=True)]
