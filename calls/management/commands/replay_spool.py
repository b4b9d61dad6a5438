import logging

from django.core.management.base import BaseCommand, CommandError

from calls.persistence.availability import engine_name
from calls.persistence.replay import replay_entries, replay_entry
from calls.persistence.spool import get_spool
from core.db_errors import describe

logger = logging.getLogger("calls.persistence")


class Command(BaseCommand):
    help = (
        "Replay the call journal (spool) into the database by hand, oldest first, each entry once "
        "in effect. A running service does this by itself when the database returns; this is for "
        "a spool left behind by a service that is not running. Entries that cannot be applied for "
        "a reason that is not an outage are quarantined (db_status lists them): --quarantined "
        "retries them once the cause is removed, --discard-quarantined ID removes one on purpose."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--quarantined",
            action="store_true",
            help="Retry the quarantined entries instead (oldest first); those that apply leave the quarantine.",
        )
        which.add_argument(
            "--discard-quarantined",
            type=int,
            metavar="ID",
            help="Remove the quarantined entry ID (as db_status lists it) for good; its payload is logged and printed.",
        )

    def handle(self, *args, quarantined: bool = False, discard_quarantined: int | None = None, **options):
        spool = get_spool()
        if discard_quarantined is not None:
            self._discard(spool, discard_quarantined)
        elif quarantined:
            self._retry_quarantined(spool)
        else:
            self._replay(spool)

    def _replay(self, spool):
        before = spool.depth()
        try:
            replayed = spool.replay(replay_entry, apply_many=replay_entries)
        except Exception as exc:  # an outage: what is left stays journaled
            raise CommandError(
                f"Replay stopped: {engine_name()} is unavailable ({describe(exc)}); "
                f"{spool.depth()} of {before} entries remain journaled"
            ) from None
        self.stdout.write(f"Replayed {replayed} journaled call write(s); {spool.depth()} remain")
        held = spool.quarantined_count()
        if held:
            self.stdout.write(f"{held} quarantined (replay_spool --quarantined retries them)")

    def _retry_quarantined(self, spool):
        before = spool.quarantined_count()
        logger.info("Retrying %d quarantined call write(s) by hand", before)
        try:
            applied, still = spool.retry_quarantined(replay_entry)
        except Exception as exc:  # an outage: what is left stays quarantined
            raise CommandError(
                f"Retry stopped: {engine_name()} is unavailable ({describe(exc)}); "
                f"{spool.quarantined_count()} of {before} entries remain quarantined"
            ) from None
        self.stdout.write(f"Applied {applied} quarantined call write(s); {still} remain quarantined")
        for entry in spool.quarantined():
            self.stdout.write(f"  {entry['seq']} call {entry['call_id']} ({entry['operation']}): {entry['reason']}")
        if still:
            raise CommandError(f"{still} quarantined call write(s) still cannot be applied")

    def _discard(self, spool, seq: int):
        entry = spool.discard_quarantined(seq)  # logs the entry and its payload
        if entry is None:
            raise CommandError(f"No quarantined call write has id {seq}")
        self.stdout.write(
            f"Discarded quarantined call write {seq} (call {entry['call_id']}, {entry['operation']}); "
            f"its payload was: {entry['payload']}"
        )
