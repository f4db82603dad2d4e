"""Mounted under any prefix in FastAPI or Starlette (no lifespan), and behind WSGI (a2wsgi)
in Flask and in Django."""

from __future__ import annotations

import asyncio
import json
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from a2wsgi import ASGIMiddleware
from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import feats
import feats.aio
import feats.web

from .conftest import CSRF, PASSWORD, SECRET, Serving


def _admin(
    redis_url: str, namespace: str, users_file: Path
) -> tuple[Starlette, redis.asyncio.Redis]:
    """The admin and its Redis client (the host closes it on the loop that used it)."""
    connection = redis.asyncio.Redis.from_url(redis_url)
    storage = feats.aio.RedisStorage(connection, namespace)
    return feats.web.create_app(storage, users=users_file, secret_key=SECRET), connection


def test_mounted_in_fastapi_under_a_prefix(
    redis_url: str, namespace: str, users_file: Path, serving: Serving
) -> None:
    host = FastAPI()

    @host.get("/", name="overview")  # the same route name as the admin's own
    def home() -> dict[str, str]:
        return {"host": "yes"}

    admin, connection = _admin(redis_url, namespace, users_file)
    host.router.routes.append(Mount("/ops/feats", app=admin, name="feats"))
    with TestClient(host) as client:
        assert client.get("/").json() == {"host": "yes"}
        login = client.get("/ops/feats/login")
        assert login.status_code == 200
        assert 'action="/ops/feats/login"' in login.text
        assert 'href="/ops/feats/static/feats.css?v=' in login.text
        assert "Path=/ops/feats" in login.headers["set-cookie"]
        assert client.get("/ops/feats/static/feats.css").status_code == 200
        csrf = CSRF.search(login.text)
        assert csrf is not None
        signed_in = client.post(
            "/ops/feats/login",
            data={
                "csrf": csrf.group(1),
                "name": "alice",
                "password": PASSWORD,
                "next": "/features/PaymentProcessor",
            },
            follow_redirects=False,
        )
        assert signed_in.headers["location"] == "/ops/feats/features/PaymentProcessor"
        page = client.get("/ops/feats/features/PaymentProcessor")
        assert page.status_code == 200
        assert 'href="/ops/feats/features/PaymentProcessor/history"' in page.text
        assert 'href="/ops/feats/"' in page.text  # the admin's overview, not the host's
        unauthenticated = TestClient(host).get(
            "/ops/feats/", headers={"accept": "text/html"}, follow_redirects=False
        )
        assert unauthenticated.headers["location"] == "/ops/feats/login"
        client.portal.call(connection.aclose)  # type: ignore[union-attr]  # set while open


def test_behind_flask_through_a2wsgi(
    redis_url: str, namespace: str, users_file: Path, serving: Serving
) -> None:
    flask_app = Flask(__name__)

    @flask_app.get("/")
    def home() -> str:
        return "the shop"

    admin, connection = _admin(redis_url, namespace, users_file)
    wsgi_admin: Any = ASGIMiddleware(admin)  # type: ignore[arg-type]  # a2wsgi's ASGIApp type is narrower than Starlette's
    flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {"/feats": wsgi_admin})  # type: ignore[method-assign]  # Flask's documented way to mount
    client = flask_app.test_client()
    assert client.get("/").text == "the shop"
    login = client.get("/feats/login")
    assert login.status_code == 200 and 'action="/feats/login"' in login.text
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    response = client.post(
        "/feats/login",
        data={"csrf": token.group(1), "name": "alice", "password": PASSWORD, "next": "/"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/feats/"
    page = client.get("/feats/features/PaymentProcessor")
    assert page.status_code == 200 and "2% + $0.30 / Transaction" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    applied = client.post(
        "/feats/features/PaymentProcessor/apply",
        data={
            "csrf": csrf.group(1),
            "kind": "route",
            "where.Country": "CA",
            "implementation": "premium",
            "expected_version": "",
            "reason": "through WSGI",
        },
    )
    assert applied.status_code == 303
    assert [(c.author, c.reason) for c in serving.history()] == [("alice", "through WSGI")]
    # a2wsgi runs the admin on an event loop of its own: the client closes there.
    asyncio.run_coroutine_threadsafe(connection.aclose(), wsgi_admin.loop).result(10)


ROOT = Path(__file__).resolve().parents[2]
SITE_SECONDS = 60.0


@pytest.fixture
def django_site(redis_url: str, namespace: str, tmp_path: Path) -> Iterator[str]:
    """tests/web/_django_site.py in its own process (Django's settings are global): its URL."""
    site = subprocess.Popen(
        [sys.executable, "-m", "tests.web._django_site", redis_url, namespace, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert site.stdout is not None
        ready, _, _ = select.select([site.stdout], [], [], SITE_SECONDS)
        assert ready, f"the Django site did not start within {SITE_SECONDS}s"
        line = site.stdout.readline()
        assert line, f"the Django site exited with {site.wait(timeout=10)}"
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        assert site.stdin is not None
        site.stdin.close()
        try:
            site.wait(timeout=10)
        except subprocess.TimeoutExpired:
            site.kill()
            site.wait()
        if site.stdout is not None:
            site.stdout.close()


def _django_sign_in(client: httpx.Client, name: str) -> None:
    response = client.post("/login/", data={"username": name, "password": PASSWORD})
    assert response.status_code == 302, response.text
    assert "sessionid" in client.cookies


def _csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, "no CSRF token"
    return found.group(1)


CANADA = {
    "kind": "route",
    "where.Country": "CA",
    "implementation": "premium",
    "expected_version": "",
    "reason": "through Django",
}


def test_behind_django_through_a2wsgi(django_site: str, serving: Serving) -> None:
    """The README's mysite/wsgi.py: Django's users and sessions decide who may do what."""
    with httpx.Client(base_url=django_site, timeout=10) as client:
        assert client.get("/").text == "the shop"
        page = client.get("/feats/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login/"
        assert client.get("/feats/").status_code == 401
        # Signed in to Django, but not staff: still not let in.
        _django_sign_in(client, "mallory")
        assert client.get("/feats/", headers={"accept": "text/html"}).status_code == 303

    with httpx.Client(base_url=django_site, timeout=10) as viewer:
        _django_sign_in(viewer, "victor")
        page = viewer.get("/feats/features/PaymentProcessor")
        assert page.status_code == 200 and "2% + $0.30 / Transaction" in page.text
        assert 'class="role role-viewer">viewer<' in page.text
        assert 'href="/feats/features/PaymentProcessor/history"' in page.text
        denied = viewer.post(
            "/feats/features/PaymentProcessor/apply", data={"csrf": _csrf(page), **CANADA}
        )
        assert denied.status_code == 403 and serving.history() == []

    with httpx.Client(base_url=django_site, timeout=10) as editor:
        _django_sign_in(editor, "alice")
        page = editor.get("/feats/features/PaymentProcessor")
        assert 'class="role role-editor">editor<' in page.text
        without_token = editor.post("/feats/features/PaymentProcessor/apply", data=CANADA)
        assert without_token.status_code == 403 and serving.history() == []
        applied = editor.post(
            "/feats/features/PaymentProcessor/apply", data={"csrf": _csrf(page), **CANADA}
        )
        assert applied.status_code == 303
        assert applied.headers["location"] == "/feats/features/PaymentProcessor"
    assert [(c.author, c.reason) for c in serving.history()] == [("alice", "through Django")]
