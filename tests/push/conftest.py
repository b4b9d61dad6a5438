"""Fixtures for push tests: a fake FCM server on loopback and a real Firebase provider aimed at it.

The Firebase SDK has no messaging emulator. Its messaging service builds the send URL from
``messaging._MessagingService.FCM_URL`` when it is created, so pointing that constant at the
loopback server makes the SDK's own encoding, authorized HTTP session, transport retries and
error mapping run for real, with nothing of the project's stubbed.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from firebase_admin import messaging
from google.auth import credentials as google_credentials

from push.firebase import FirebaseProvider
from push.provider_choice import install_provider
from push.worker import get_worker

PROJECT_ID = "secureconnect-test"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

REPLIES = {
    "ok": (200, None),
    "unregistered": (
        404,
        {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [{"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}],
        },
    ),
    "invalid_token": (
        400,
        {
            "code": 400,
            "message": "The registration token is not a valid FCM registration token",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"},
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.fid", "description": "Invalid registration token"}],
                },
            ],
        },
    ),
    "invalid_payload": (
        400,
        {
            "code": 400,
            "message": "Invalid value at 'message.android.ttl'",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}],
        },
    ),
    "quota": (
        429,
        {
            "code": 429,
            "message": "Quota exceeded.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}],
        },
    ),
    "internal": (500, {"code": 500, "message": "Internal error.", "status": "INTERNAL"}),
    "unavailable": (503, {"code": 503, "message": "The service is unavailable.", "status": "UNAVAILABLE"}),
    # A 5xx the SDK's transport does not retry itself (it retries 500 and 503).
    "bad_gateway": (502, {"code": 502, "message": "Bad gateway.", "status": "UNAVAILABLE"}),
}


class FakeFCM:
    """Answers FCM v1 ``messages:send`` requests and records them.

    ``script(fid, "quota", "ok")`` makes the next sends to that device answer 429 then 200;
    a device with no (remaining) script gets 200.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self._scripts: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fid = body.get("message", {}).get("fid", "")
                with fake._lock:
                    script = fake._scripts.get(fid) or []
                    reply = script.pop(0) if script else "ok"
                    n = len(fake.requests)
                    fake.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body, "reply": reply}
                    )
                status, error = REPLIES[reply]
                payload = {"name": f"projects/{PROJECT_ID}/messages/{n}"} if error is None else {"error": error}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def script(self, fid: str, *replies: str) -> None:
        with self._lock:
            self._scripts[fid] = list(replies)

    def messages(self, fid: str | None = None) -> list[dict]:
        """The ``message`` of each request received (to one device, or all), in arrival order."""
        with self._lock:
            return [
                r["body"]["message"] for r in self.requests if fid is None or r["body"]["message"].get("fid") == fid
            ]

    def replies(self, fid: str) -> list[str]:
        with self._lock:
            return [r["reply"] for r in self.requests if r["body"]["message"].get("fid") == fid]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class OfflineCredentials(google_credentials.Credentials):
    """A Google credential that already holds a token and never goes to the network."""

    def __init__(self):
        super().__init__()
        self.token = "test-access-token"

    def refresh(self, request):
        pass


@pytest.fixture
def fcm_server():
    server = FakeFCM()
    yield server
    server.stop()


@pytest.fixture
def firebase_provider(fcm_server, monkeypatch):
    """A real FirebaseProvider sending to ``fcm_server``, installed as the project's provider."""
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", fcm_server.url + "/v1/projects/{0}/messages:send")
    provider = FirebaseProvider(project_id=PROJECT_ID, credentials=OfflineCredentials(), http_timeout=5)
    previous = install_provider(provider)
    yield provider
    install_provider(previous)
    provider.close()


@pytest.fixture
def fast_retries(settings):
    settings.PUSH_RETRY_ATTEMPTS = 3
    settings.PUSH_RETRY_BASE_DELAY = 0.01
    settings.PUSH_RETRY_MAX_DELAY = 0.05
    return settings


def wait_for_pushes(timeout: float = 15) -> None:
    """Wait (bounded) until the push worker has run every queued job."""
    assert get_worker().wait_idle(timeout=timeout), "push jobs still running after the timeout"
