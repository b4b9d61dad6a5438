"""The browser client is served by the service itself: its page at /app/, its files through
staticfiles (from the app folder in development, from collected files in production)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import RequestFactory
from whitenoise.middleware import WhiteNoiseMiddleware

STATIC = Path(__file__).resolve().parents[2] / "webclient" / "static" / "webclient"
MODULE_IMPORT = re.compile(r"""^import\s.*?from\s+["'](\.{1,2}/[^"']+)["'];""", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.portable


def test_app_page_loads_the_client_from_static_files(client):
    response = client.get("/app/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert '<script type="module" src="/static/webclient/js/main.js">' in html
    assert 'href="/static/webclient/app.css"' in html


def test_app_page_allows_only_its_own_scripts_and_sockets(client):
    policy = client.get("/app/", HTTP_HOST="127.0.0.1:8083")["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self' ws://127.0.0.1:8083 wss://127.0.0.1:8083" in policy
    assert "frame-ancestors 'none'" in policy


def test_app_page_is_read_only(client):
    assert client.post("/app/").status_code == 405


def test_every_module_import_names_a_file_that_exists():
    """No build step: a typo in an import path would only show in the browser."""
    modules = sorted((STATIC / "js").glob("*.js"))
    assert modules
    for module in modules:
        for target in MODULE_IMPORT.findall(module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports missing {target}"


def test_the_client_files_are_found_by_staticfiles():
    for name in ("webclient/app.css", "webclient/js/main.js", "webclient/js/call.js"):
        assert finders.find(name), name


def test_collected_files_are_served_by_whitenoise_without_debug(tmp_path, settings):
    """Production: DEBUG off, files from STATIC_ROOT after collectstatic, no finders."""
    settings.STATIC_ROOT = tmp_path
    settings.DEBUG = False
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "webclient" / "js" / "main.js").is_file()

    middleware = WhiteNoiseMiddleware(get_response=lambda request: pytest.fail("not served by whitenoise"))
    response = middleware(RequestFactory().get("/static/webclient/js/main.js"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = b"".join(response.streaming_content)
    assert body == (STATIC / "js" / "main.js").read_bytes()
