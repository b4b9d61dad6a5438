import json
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from accounts.emails import canonical_email
from accounts.exceptions import AccountError
from accounts.models import User
from accounts.services import user_register
from calls.exceptions import CallError
from calls.models import Conversation
from calls.persistence.availability import engine_name
from calls.services import conversation_create
from core.db_errors import describe


@dataclass(frozen=True)
class DemoUser:
    email: str
    username: str
    display_name: str
    password: str


# The same accounts and passwords as the README's curl walk-through. The passwords are public:
# that is why the command refuses to run in production unless told otherwise.
DEMO_USERS = (
    DemoUser("alice@example.com", "alice", "Alice", "a-long-passphrase-alice"),
    DemoUser("bob@example.com", "bob", "Bob", "a-long-passphrase-bob"),
    DemoUser("carol@example.com", "carol", "Carol", "a-long-passphrase-carol"),
)
DEMO_GROUP_TITLE = "Demo team"


class Command(BaseCommand):
    help = (
        "Create demo accounts with published passwords (alice@example.com, bob@example.com, "
        "carol@example.com), a direct conversation between Alice and Bob and a group conversation "
        "of all three, and print how to log in and start a call. Running it again changes nothing "
        "(a demo account whose password was changed gets the published one back). Refuses to run "
        "with ENV=production unless --allow-production is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even with ENV=production (anyone who reads the README can log in as these users).",
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8083",
            help="Where the service answers, for the printed instructions (default: %(default)s).",
        )

    def handle(self, *args, allow_production=False, base_url="http://127.0.0.1:8083", **options):
        if settings.IS_PRODUCTION and not allow_production:
            raise CommandError(
                "Refusing to create accounts with published passwords with ENV=production "
                "(add --allow-production to do it anyway)"
            )
        try:
            users = [_ensure_user(spec) for spec in DEMO_USERS]
            alice, bob, _carol = (user for user, _ in users)
            direct = _ensure_direct_conversation(alice, bob)
            group = _ensure_group_conversation(alice, [user for user, _ in users])
        except (AccountError, CallError, ValidationError) as exc:
            raise CommandError(f"Could not seed the demo data: {_one_line(exc)}") from None
        except DatabaseError as exc:
            raise CommandError(
                f"Could not seed the demo data in {engine_name()}: {describe(exc)} "
                "(is the database up and migrated? python manage.py migrate)"
            ) from None
        self.stdout.write(_instructions(users, direct=direct, group=group, bob=bob, base_url=base_url.rstrip("/")))


def _ensure_user(spec: DemoUser) -> tuple[User, str]:
    """The demo account, created through registration; an existing one keeps its row and gets
    the published password back (and is re-activated), so the printed logins always work."""
    user = User.objects.filter(email=canonical_email(spec.email)).first()
    if user is None:
        return (
            user_register(
                email=spec.email, username=spec.username, password=spec.password, display_name=spec.display_name
            ),
            "created",
        )
    changes, fields = [], []
    if not user.check_password(spec.password):
        user.set_password(spec.password)
        changes.append("password reset")
        fields.append("password")
    if not user.is_active:
        user.is_active = True
        changes.append("re-activated")
        fields.append("is_active")
    if fields:
        user.save(update_fields=[*fields, "updated_at"])
    return user, ", ".join(changes) or "already there"


def _ensure_direct_conversation(alice: User, bob: User) -> tuple[Conversation, str]:
    conversation, created = conversation_create(creator_id=alice.pk, type=Conversation.Type.DIRECT, member_ids=[bob.pk])
    return conversation, "created" if created else "already there"


def _ensure_group_conversation(creator: User, members: list[User]) -> tuple[Conversation, str]:
    existing = (
        Conversation.objects.filter(type=Conversation.Type.GROUP, title=DEMO_GROUP_TITLE, created_by=creator)
        .order_by("created_at")
        .first()
    )
    if existing is not None:
        return existing, "already there"
    conversation, _ = conversation_create(
        creator_id=creator.pk,
        type=Conversation.Type.GROUP,
        title=DEMO_GROUP_TITLE,
        member_ids=[m.pk for m in members],
    )
    return conversation, "created"


def _one_line(exc: Exception) -> str:
    """A domain or validation error as one line, naming the fields it is about."""
    if isinstance(exc, ValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
    else:
        fields = {"": [exc.message], **exc.details}
    parts = []
    for field, messages in fields.items():
        text = " ".join(str(m) for m in messages) if isinstance(messages, list | tuple) else str(messages)
        parts.append(f"{field}: {text}" if field else text)
    return " ".join(parts)


def _instructions(users, *, direct, group, bob, base_url: str) -> str:
    (direct_conversation, direct_state), (group_conversation, group_state) = direct, group
    width = max(len(user.email) for user, _ in users)
    lines = ["Demo accounts (log in with POST /v1/auth/login):"]
    for (user, state), spec in zip(users, DEMO_USERS, strict=True):
        lines.append(f"  {user.email:<{width}}  password {spec.password:<24}  id {user.pk}  [{state}]")
    alice_spec, bob_spec = DEMO_USERS[0], DEMO_USERS[1]
    read = 'python3 -c \'import json,sys; print(json.load(sys.stdin)["data"]["{}"])\''
    body = json.dumps(
        {"call_type": "video", "conversation_id": str(direct_conversation.pk), "callee_ids": [str(bob.pk)]},
        separators=(",", ":"),
    )
    lines += [
        "",
        "Conversations:",
        f"  Alice and Bob (direct)   {direct_conversation.pk}  [{direct_state}]",
        f"  {DEMO_GROUP_TITLE} (group)        {group_conversation.pk}  [{group_state}]",
        "",
        "Try a call: paste these lines into a shell (python3 only reads fields from the JSON).",
        "Alice and Bob log in, Alice calls Bob, Bob answers (active), Alice hangs up (ended):",
        "",
        f"API={base_url}/v1",
        "token() { curl -s -X POST \"$API/auth/login\" -H 'Content-Type: application/json' \\",
        '  -d "{\\"email\\":\\"$1\\",\\"password\\":\\"$2\\"}" | ' + read.format("access_token") + "; }",
        f"export ALICE_ACCESS_TOKEN=$(token {alice_spec.email} {alice_spec.password})",
        f"export BOB_ACCESS_TOKEN=$(token {bob_spec.email} {bob_spec.password})",
        'export CALL_ID=$(curl -s -X POST "$API/calls/initiate" -H "Authorization: Bearer $ALICE_ACCESS_TOKEN" \\',
        f"  -H 'Content-Type: application/json' -d '{body}' | " + read.format("call_id") + ")",
        'curl -s -X POST "$API/calls/$CALL_ID/join" -H "Authorization: Bearer $BOB_ACCESS_TOKEN" | '
        + read.format("status"),
        'curl -s -X POST "$API/calls/$CALL_ID/end" -H "Authorization: Bearer $ALICE_ACCESS_TOKEN" | '
        + read.format("status"),
        "",
        "README.md (Calls API) has the whole walk-through.",
        f"The admin is at {base_url}/admin/ (python manage.py createsuperuser for an account).",
    ]
    return "\n".join(lines)
