import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from calls.persistence import availability
from calls.persistence.availability import engine_name
from calls.persistence.spool import get_spool
from calls.persistence.supervisor import PermanentConnectionError, connect_with_backoff
from core.db_errors import describe
from core.timefmt import iso_z

ROWS = ("state", "engine", "server_version", "error", "spool_depth", "spool_quarantined", "spool_bytes", "spool_path")


class Command(BaseCommand):
    help = (
        "Check the database once now and print what a fresh check finds: the state it would put "
        "the service in (operational or limited), the engine and server version, the spool "
        "depth, and the quarantined journal entries (which do not make it limited). Exits 0 when "
        "operational, 1 when limited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, json: bool = False, **options):
        report = {"engine": engine_name(), "server_version": None, "error": None}
        try:
            report["server_version"] = connect_with_backoff(max_tries=1, base_delay=0, max_delay=0, quiet=True)
            report["state"] = availability.OPERATIONAL
        except PermanentConnectionError as exc:
            report.update(state=availability.LIMITED, error=str(exc))
        except (DatabaseError, OSError) as exc:
            report.update(state=availability.LIMITED, error=describe(exc))
        spool = get_spool()
        report["spool_depth"] = spool.depth()
        report["spool_bytes"] = spool.size_bytes()
        report["spool_path"] = str(spool.path)
        quarantined = [{**entry, **_times(entry)} for entry in spool.quarantined()]
        report["spool_quarantined"] = len(quarantined)
        report["quarantined"] = quarantined
        if json:
            self.stdout.write(_json_dumps(report))
        else:
            for key in ROWS:
                self.stdout.write(f"{key:17} {report[key] if report[key] is not None else '-'}")
            for entry in quarantined:
                self.stdout.write(
                    f"{'quarantined':17} {entry['seq']} call {entry['call_id']} ({entry['operation']}, "
                    f"quarantined {entry['quarantined_at']}): {entry['reason']}"
                )
        if report["state"] != availability.OPERATIONAL:
            raise CommandError(f"{report['engine']} is unavailable (limited): {report['error']}")


def _times(entry: dict) -> dict:
    return {key: iso_z(datetime.fromtimestamp(entry[key], UTC)) for key in ("written_at", "quarantined_at")}


def _json_dumps(data) -> str:
    return json.dumps(data, sort_keys=True)
