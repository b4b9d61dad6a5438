"""Fuzz the API from its own OpenAPI schema (schemathesis), in process, on the test database;
and hold the schema and the URL routes together.

Every operation of /v1/schema gets generated requests (the schema's examples, boundary and
invalid values of each parameter and body field, then random data), sent through the real
WSGI application with a real access token of a real user, and every answer is checked: no 5xx,
a documented status, a body that matches the documented schema, the documented content type
and headers.

Real rows stand behind the ids. The schema under test is the one /v1/schema serves, plus
examples (in this module's copy only) holding placeholder ids; each test swaps them for the ids
of the conversation, calls, device and tokens its fixture made, so every operation also runs on
something that exists, not only on random ids that answer 404.

Bounded and deterministic for CI: a fixed seed, derandomized generation, no example database,
no deadline. ``FUZZ_MAX_EXAMPLES=500 FUZZ_SEED=7`` (environment) hunts longer by hand.

The schema is loaded when the module is collected because ``schemathesis.pytest.from_fixture``
does not run on pytest 9.2 (it writes ``Node._nodeid``, which pytest 9.2 no longer has).
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from dataclasses import dataclass, field

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tokens import issue_access_token, issue_token_pair
from calls import selectors, services
from calls.models import Conversation
from push.services import device_register
from push.worker import get_worker
from tests.factories import DEFAULT_PASSWORD, make_conversation, make_user

HTTP_METHODS = ("get", "put", "post", "patch", "delete")
SEED = int(os.environ.get("FUZZ_SEED", "4"))
# Random requests per operation in the fuzzing phase; the examples and coverage phases add their
# own deterministic cases. Bounded so that the whole module runs well under a minute on 2 cores.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
HIGH_RATE = "100000/min"
# Operations the fuzzer skips, as "METHOD /path": reason. Every other operation of the schema runs.
EXCLUDED_OPERATIONS: dict[str, str] = {}
# /v1 routes that are not operations of the API, and why they are not in the schema.
UNDOCUMENTED_ROUTES = {
    "/v1/schema": "the schema itself (SERVE_INCLUDE_SCHEMA is off)",
    "/v1/docs": "the Swagger UI page that renders the schema",
}

FUZZER_EMAIL = "fuzzer@example.test"
# Stand-ins in the schema's examples for ids and tokens that only exist once a test made them.
PLACEHOLDERS = {
    name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"secureconnect-fuzz/{name}"))
    for name in (
        "peer",
        "conversation",
        "idle_conversation",
        "call_to_view",
        "call_to_join",
        "call_to_decline",
        "call_to_leave",
        "call_to_end",
        "history_cursor",
        "refresh_token",
        "refresh_token_to_revoke",
    )
}
DEVICE_TO_DELETE = "fuzz-device-to-delete"


def add_examples(raw: dict) -> dict:
    """The served schema plus examples naming the rows ``fuzz_world`` makes (as placeholders)."""
    raw = copy.deepcopy(raw)
    ph = PLACEHOLDERS
    parameter_examples = {
        "/v1/calls/{call_id}": {"call_id": ph["call_to_view"]},
        "/v1/calls/{call_id}/join": {"call_id": ph["call_to_join"]},
        "/v1/calls/{call_id}/decline": {"call_id": ph["call_to_decline"]},
        "/v1/calls/{call_id}/leave": {"call_id": ph["call_to_leave"]},
        "/v1/calls/{call_id}/end": {"call_id": ph["call_to_end"]},
        "/v1/conversations/{conversation_id}": {"conversation_id": ph["conversation"]},
        "/v1/devices/{token}": {"token": DEVICE_TO_DELETE},
        "/v1/calls": {"conversation_id": ph["conversation"], "cursor": ph["history_cursor"], "limit": 1},
        "/v1/users/lookup": {"q": "fuzzer"},
    }
    body_examples = {
        ("/v1/auth/register", "post"): {
            "email": "fuzz-new@example.test",
            "username": "fuzz_new",
            "password": "a-long-unusual-passphrase",
            "display_name": "New",
        },
        ("/v1/auth/login", "post"): {"email": FUZZER_EMAIL, "password": DEFAULT_PASSWORD},
        ("/v1/auth/refresh", "post"): {"refresh_token": ph["refresh_token"]},
        ("/v1/auth/logout", "post"): {"refresh_token": ph["refresh_token_to_revoke"]},
        ("/v1/conversations", "post"): {"type": "group", "title": "Fuzz", "member_ids": [ph["peer"]]},
        ("/v1/calls/initiate", "post"): {
            "call_type": "audio",
            "conversation_id": ph["idle_conversation"],
            "callee_ids": [ph["peer"]],
        },
        ("/v1/calls/{call_id}/end", "post"): {"reason": "hangup"},
        ("/v1/devices", "post"): {"token": "fuzz-device-new", "platform": "ios"},
    }
    for path, item in raw["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in parameter_examples.get(path, {}):
                    parameter["example"] = parameter_examples[path][parameter["name"]]
            if (path, method) in body_examples:
                operation["requestBody"]["content"]["application/json"]["example"] = body_examples[(path, method)]
    return raw


def served_schema() -> dict:
    response = Client().get("/v1/schema", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def load_schema():
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    loaded = schemathesis.openapi.from_dict(add_examples(served_schema()), config=config)
    loaded.app = get_wsgi_application()
    for label in EXCLUDED_OPERATIONS:
        method, path = label.split(" ", 1)
        loaded = loaded.exclude(method=method, path=path)
    return loaded


schema = load_schema()


@dataclass(frozen=True)
class FuzzWorld:
    """The fuzzing user, and the real value of each placeholder in the schema's examples."""

    user: object
    real: dict[str, str]
    statuses: list[int] = field(default_factory=list)

    def access_token(self) -> str:
        """A new access token (its own ``jti``) for each request: a logout revokes only that one."""
        u = self.user
        return issue_access_token(user_id=u.id, email=u.email, username=u.username, role="user")

    def fill_in(self, case) -> None:
        """Put the real ids and tokens where the case carries placeholders."""
        case.path_parameters = self._swap(case.path_parameters)
        case.query = self._swap(case.query)
        case.body = self._swap(case.body)

    def _swap(self, value):
        if isinstance(value, str):
            return self.real.get(value, value)
        if isinstance(value, list):
            return [self._swap(item) for item in value]
        if isinstance(value, dict):
            return {key: self._swap(item) for key, item in value.items()}
        return value


@pytest.fixture
def fuzz_world(transactional_db, settings):
    """A user with a conversation, a call in each state the call actions act on, a device and
    refresh tokens; rate limits raised so that 429 does not hide what the API answers."""
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], HIGH_RATE)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    me = make_user(email=FUZZER_EMAIL, username="fuzzer", display_name="Fuzzer")
    peer = make_user(display_name="Peer")

    def ringing_call(*, caller, callee) -> str:
        conversation = make_conversation(members=[caller, callee])
        result = services.call_initiate(
            caller_id=caller.id, conversation_id=conversation.id, callee_ids=[callee.id], call_type="video"
        )
        return str(result.record.call.id)

    call_to_leave = ringing_call(caller=peer, callee=me)
    services.call_join(call_id=call_to_leave, user_id=me.id)
    real = {
        "peer": str(peer.id),
        "conversation": str(make_conversation(members=[me, peer], type=Conversation.Type.GROUP, title="Fuzz").id),
        "idle_conversation": str(make_conversation(members=[me, peer]).id),
        "call_to_view": ringing_call(caller=me, callee=peer),
        "call_to_join": ringing_call(caller=peer, callee=me),
        "call_to_decline": ringing_call(caller=peer, callee=me),
        "call_to_leave": call_to_leave,
        "call_to_end": ringing_call(caller=me, callee=peer),
        "refresh_token": issue_token_pair(me)["refresh_token"],
        "refresh_token_to_revoke": issue_token_pair(me)["refresh_token"],
    }
    real["history_cursor"] = selectors.call_history(user_id=me.id, limit=1).next_cursor
    device_register(user_id=me.id, token=DEVICE_TO_DELETE, platform="android")
    world = FuzzWorld(user=me, real={PLACEHOLDERS[name]: value for name, value in real.items()})
    yield world
    # Pushes run on worker threads after commit: let them finish before the tables are flushed.
    assert get_worker().wait_idle(timeout=15), "push jobs still running"
    assert any(200 <= status < 300 for status in world.statuses), (
        f"no request succeeded ({sorted(set(world.statuses))}): do the examples still name real rows?"
    )


@pytest.mark.portable
# Real transactions: the WSGI handler closes the database connection after each request, which
# would end the transaction a plain django_db test runs in.
@pytest.mark.django_db(transaction=True)
@schema.parametrize()
# One world per operation, shared by that operation's requests: on purpose.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_every_operation_answers_as_documented(case, fuzz_world):
    fuzz_world.fill_in(case)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_world.access_token()}"}, checks=CHECKS)
    if case.method.lower() == case.operation.method.lower():  # not a probe with another method
        fuzz_world.statuses.append(response.status_code)


# --- the schema and the routes ---------------------------------------------------------------------


def openapi_path(route: str) -> str:
    """``v1/calls/<str:call_id>`` as OpenAPI writes it: ``/v1/calls/{call_id}``."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def v1_routes() -> set[str]:
    """Every URL route under /v1, as an OpenAPI path."""
    routes = set()

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                routes.add(openapi_path(prefix + str(entry.pattern)))

    walk(get_resolver().url_patterns, "")
    return {path for path in routes if path == "/v1" or path.startswith("/v1/")}


def documented_methods(path_item: dict) -> set[str]:
    return {method for method in HTTP_METHODS if method in path_item}


@pytest.mark.portable
def test_every_v1_route_is_in_the_schema_and_every_schema_path_is_a_route():
    spec_paths = set(served_schema()["paths"])
    routes = v1_routes()

    assert routes - spec_paths == set(UNDOCUMENTED_ROUTES)
    assert spec_paths <= routes


@pytest.mark.portable
def test_every_schema_path_resolves_to_a_view_with_exactly_the_documented_methods():
    for path, path_item in served_schema()["paths"].items():
        match = resolve(re.sub(r"\{\w+\}", str(uuid.uuid4()), path))
        assert openapi_path(match.route) == path
        implemented = {method for method in HTTP_METHODS if hasattr(match.func.view_class, method)}
        assert documented_methods(path_item) == implemented, path


@pytest.mark.portable
def test_every_operation_of_the_schema_is_fuzzed_unless_excluded_with_a_reason():
    operations = {
        f"{method.upper()} {path}"
        for path, path_item in served_schema()["paths"].items()
        for method in documented_methods(path_item)
    }
    fuzzed = {result.ok().label for result in schema.get_all_operations()}
    assert fuzzed == operations - set(EXCLUDED_OPERATIONS)
    assert all(reason.strip() for reason in EXCLUDED_OPERATIONS.values())
