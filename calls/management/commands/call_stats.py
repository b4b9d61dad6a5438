import json
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from accounts.emails import canonical_email
from accounts.models import User
from calls.api.serializers import AnalyticsQuery
from calls.exceptions import PersistenceUnavailable
from calls.persistence.availability import engine_name
from calls.selectors import call_analytics
from core.db_errors import describe


class Command(BaseCommand):
    help = (
        "Print the call analytics of GET /v1/calls/analytics (totals, answer rate, talk time, "
        "duration percentiles, counts by status and type) for the whole service or one user, "
        "computed by the database. --since is inclusive and --until exclusive, as in the API."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", help="Only the calls of this user: an email address or a user id (UUID).")
        parser.add_argument(
            "--since", help="Calls started at or after this ISO 8601 date or datetime (UTC unless it has an offset)."
        )
        parser.add_argument("--until", help="Calls started before this ISO 8601 date or datetime.")
        parser.add_argument("--json", action="store_true", help="Print the API's JSON object instead of a table.")

    def handle(self, *args, user=None, since=None, until=None, json=False, **options):
        window = _parse_window(since=since, until=until)
        try:
            subject = _resolve_user(user) if user else None
            analytics = call_analytics(user_id=subject.pk if subject else None, **window)
        except (DatabaseError, PersistenceUnavailable) as exc:
            raise CommandError(f"Could not read the call analytics from {engine_name()}: {describe(exc)}") from None
        if json:
            self.stdout.write(_json_dumps(analytics))
            return
        scope = f"{subject.email} ({subject.pk})" if subject else "every user"
        self.stdout.write(_table(analytics, scope=scope, since=window.get("since"), until=window.get("until")))


def _parse_window(*, since: str | None, until: str | None) -> dict:
    """The same parsing and checks as the API's query (dates are midnight UTC)."""
    raw = {name: value for name, value in (("since", since), ("until", until)) if value}
    query = AnalyticsQuery(data=raw)
    if not query.is_valid():
        field, messages = next(iter(query.errors.items()))
        option = "--until" if field == "non_field_errors" else f"--{field}"
        raise CommandError(f"{option}: {' '.join(str(m) for m in messages)}")
    return dict(query.validated_data)


def _resolve_user(value: str) -> User:
    try:
        user_id = uuid.UUID(value)
    except ValueError:
        user = User.objects.filter(email=canonical_email(value)).first()
        if user is None:
            raise CommandError(f"--user: no user with the email {value!r}") from None
        return user
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise CommandError(f"--user: no user with the id {user_id}")
    return user


def _json_dumps(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def _table(analytics: dict, *, scope: str, since, until) -> str:
    window = f"{since.isoformat() if since else 'the beginning'} to {until.isoformat() if until else 'now'}"
    rate = analytics["answer_rate"]
    rows = [
        ("Calls", analytics["total"]),
        ("Answered", analytics["answered"]),
        ("Missed", analytics["missed"]),
        ("Answer rate", f"{rate:.4f} ({rate:.1%})"),
        ("Average duration (s)", analytics["avg_duration_seconds"]),
        ("Median duration (s)", analytics["p50_duration_seconds"]),
        ("95th percentile duration (s)", analytics["p95_duration_seconds"]),
        ("Total talk time (s)", analytics["total_talk_seconds"]),
    ]
    sections = [
        [f"Call analytics for {scope}, {window}"],
        _aligned(("Metric", "Value"), rows),
        _aligned(("Status", "Calls"), list(analytics["by_status"].items())),
        _aligned(("Type", "Calls"), list(analytics["by_type"].items())),
    ]
    return "\n\n".join("\n".join(section) for section in sections)


def _aligned(header: tuple[str, str], rows: list[tuple]) -> list[str]:
    width = max(len(str(label)) for label, _ in [header, *rows])
    return [f"{label!s:<{width}}  {value}" for label, value in [header, *rows]]
