from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from calls.persistence.availability import engine_name
from calls.persistence.supervisor import PermanentConnectionError, connect_with_backoff
from core.db_errors import describe


class Command(BaseCommand):
    help = (
        "Wait until the database accepts connections, with the service's exponential backoff. "
        "Exits 0 once connected, 1 with the reason when it gives up (errors that cannot heal, "
        "such as a wrong password or a missing database, give up at once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--max-tries", type=int, default=settings.DB_CONNECT_MAX_TRIES)
        parser.add_argument("--base-delay", type=float, default=settings.DB_CONNECT_BASE_DELAY)
        parser.add_argument("--max-delay", type=float, default=settings.DB_CONNECT_MAX_DELAY)

    def handle(self, *args, max_tries, base_delay, max_delay, **options):
        if max_tries < 1:
            raise CommandError("--max-tries must be at least 1")
        try:
            version = connect_with_backoff(max_tries=max_tries, base_delay=base_delay, max_delay=max_delay)
        except PermanentConnectionError as exc:
            raise CommandError(f"{engine_name()} refused the connection: {exc}") from None
        except (DatabaseError, OSError) as exc:
            raise CommandError(
                f"Could not connect to {engine_name()} after {max_tries} attempts: {describe(exc)}"
            ) from None
        self.stdout.write(f"{engine_name()} is ready ({version})")
