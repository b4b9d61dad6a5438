from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from calls.persistence.errors import describe
from calls.persistence.spool import get_spool
from calls.persistence.store import replay_entry
from calls.persistence.supervisor import engine_name


class Command(BaseCommand):
    help = (
        "Replay the call journal (spool) into the database by hand, oldest first, each entry once "
        "in effect. A running service does this by itself when the database returns; this is for "
        "a spool left behind by a service that is not running."
    )

    def handle(self, *args, **options):
        spool = get_spool()
        before = spool.depth()
        try:
            replayed = spool.replay(replay_entry)
        except (DatabaseError, OSError) as exc:
            raise CommandError(
                f"Replay stopped: {engine_name()} is unavailable ({describe(exc)}); "
                f"{spool.depth()} of {before} entries remain journaled"
            ) from None
        self.stdout.write(f"Replayed {replayed} journaled call write(s); {spool.depth()} remain")
