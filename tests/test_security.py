"""What the service's own pages may load: the API docs from the installed drf-spectacular-sidecar
(never a CDN), and a Content-Security-Policy on the docs and the admin that allows no other origin."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.factories import make_user

ROOT = Path(__file__).resolve().parent.parent
SOURCE = re.compile(r"""(?:src|href)="([^"]+)\"""")


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def assert_allows_no_other_origin(policy: dict[str, list[str]]) -> None:
    """Every source is this origin, nothing, data: images or a hash: no host, scheme or wildcard."""
    allowed = {"'self'", "'none'"}
    for directive, sources in policy.items():
        for source in sources:
            assert (
                source in allowed
                or (directive == "img-src" and source == "data:")
                or re.fullmatch(r"'sha256-[A-Za-z0-9+/]+={0,2}'", source)
            ), f"{directive} allows {source}"
    assert policy["default-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]


@pytest.mark.portable
def test_the_docs_page_loads_swagger_ui_from_this_service_not_a_cdn():
    response = Client().get("/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    sources = SOURCE.findall(html)
    assert "cdn.jsdelivr.net" not in html and not any("//" in source for source in sources), sources
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        path = f"/static/drf_spectacular_sidecar/swagger-ui-dist/{name}"
        assert path in sources
        assert finders.find(path.removeprefix("/static/")), f"{path} is not an installed static file"


@pytest.mark.portable
def test_the_docs_page_runs_no_inline_script():
    """The Swagger UI set-up is a script of its own (the page's ?script URL), so the policy needs no
    'unsafe-inline'."""
    client = Client()
    html = client.get("/v1/docs").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script> block"
    (script_url,) = [src for src in SOURCE.findall(html) if "script" in src and src.startswith("/v1/docs")]
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "/v1/schema" in script.content.decode() and "SwaggerUIBundle" in script.content.decode()


@pytest.mark.portable
def test_the_docs_page_policy_allows_no_other_origin_and_only_its_own_inline_style():
    response = Client().get("/v1/docs")
    policy = policy_of(response)
    assert_allows_no_other_origin(policy)
    styles = re.findall(r"<style>(.*?)</style>", response.content.decode(), flags=re.DOTALL)
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles}
    assert styles and hashes <= set(policy["style-src"]), "the page's style block must match its hash"
    assert "validator.swagger.io" not in Client().get("/v1/docs?script=").content.decode()


@pytest.mark.portable
def test_the_admin_login_page_allows_no_other_origin():
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert_allows_no_other_origin(policy_of(response))
    assert "'sha256-" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_admin_pages_staff_see_allow_no_other_origin():
    client = Client()
    client.force_login(make_user(is_staff=True, is_superuser=True))
    for path in ("/admin/", "/admin/calls/call/", "/admin/accounts/user/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_allows_no_other_origin(policy_of(response))


@pytest.mark.portable
def test_the_web_client_keeps_its_policy_with_its_sockets():
    policy = policy_of(Client().get("/app/", HTTP_HOST="localhost:8083"))
    assert policy["connect-src"] == ["'self'", "ws://localhost:8083", "wss://localhost:8083"]
    assert policy["media-src"] == ["'self'", "blob:", "mediastream:"]
    assert policy["script-src"] == ["'self'"]


@pytest.mark.portable
def test_the_sidecar_is_pinned_exactly_and_installed_at_that_version():
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert "drf-spectacular-sidecar==2026.10.1" in pins
    assert version("drf-spectacular-sidecar") == "2026.10.1"
