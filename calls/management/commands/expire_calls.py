from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from calls.services import call_connections_sweep, call_expire_due
from core.db_errors import describe


class Command(BaseCommand):
    help = (
        "Mark callees who have rung longer than CALL_RING_TIMEOUT as missed (an unanswered call: "
        "missed, reason no_answer), and end calls whose participants have been gone longer than "
        "CALL_RECONNECT_GRACE (reason connection_lost). The server does both every few seconds by "
        "itself; run this from cron for a deployment without a running server, or to catch up by hand."
    )

    def handle(self, *args, **options):
        try:
            expired = call_expire_due()
            lost = call_connections_sweep()
        except DatabaseError as exc:
            raise CommandError(f"Could not expire calls: {describe(exc)}") from None
        self.stdout.write(f"Marked {expired} unanswered call(s) as missed")
        self.stdout.write(f"Settled {lost} call(s) whose participants' connections were lost")
