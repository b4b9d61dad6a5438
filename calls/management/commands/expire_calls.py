from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from calls.persistence.errors import describe
from calls.services import call_expire_due


class Command(BaseCommand):
    help = (
        "Mark calls that have rung longer than CALL_RING_TIMEOUT as missed (reason no_answer). "
        "The server does this every few seconds by itself; run this from cron for a deployment "
        "without a running server, or to catch up by hand."
    )

    def handle(self, *args, **options):
        try:
            expired = call_expire_due()
        except DatabaseError as exc:
            raise CommandError(f"Could not expire calls: {describe(exc)}") from None
        self.stdout.write(f"Marked {expired} unanswered call(s) as missed")
