"""``feats web`` run as a command: ``--no-auth`` says so on every page, and
``--proxy-headers`` trusts X-Forwarded-Proto/For only when given."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import feats.web

from .conftest import PASSWORD, Serving

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 20.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NO_AUTH = "Authentication is off (<code>--no-auth</code>)"


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"feats web exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # between polls of a deadline-bounded wait, not a synchronisation
    raise AssertionError(f"feats web did not answer at {url} within {START_SECONDS}s")


@contextmanager
def feats_web(
    redis_url: str, namespace: str, port: int, *options: str, ready: str = "/"
) -> Iterator[str]:
    """``feats web`` on 127.0.0.1:``port`` until the block ends; yields its base URL."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "feats", "web", "--redis", redis_url, "-n", namespace),
            *("--host", "127.0.0.1", "--port", str(port), *options),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "FEATS_AUTHOR": "local-tester",
            "FEATS_WEB_SECRET_KEY": "standalone-tests-secret-key",
        },
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_http(base + ready, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_no_auth_shows_its_banner_and_who_changes_are_recorded_as(
    redis_url: str, namespace: str, closed_port: int, serving: Serving
) -> None:
    with (
        feats_web(redis_url, namespace, closed_port, "--no-auth") as base,
        httpx.Client(base_url=base) as client,
    ):
        for path in ("/", "/features/PaymentProcessor", "/drift"):
            page = client.get(path, follow_redirects=False)
            assert page.status_code == 200, path  # no sign-in page in between
            assert NO_AUTH in page.text, path
            assert "recorded as local-tester" in page.text
            assert "Sign out" not in page.text
        assert 'id="feature-PaymentProcessor"' in client.get("/").text  # this namespace's
        assert client.get("/login").status_code == 404
        # Without --proxy-headers, a forwarded https is not believed: no Secure cookie.
        fresh = httpx.get(base + "/", headers={"x-forwarded-proto": "https"})
        assert "Secure" not in fresh.headers["set-cookie"]


def _sign_in(client: httpx.Client, name: str, forwarded_for: str) -> int:
    token = CSRF.search(client.get("/login").text)
    assert token is not None
    response = client.post(
        "/login",
        data={"csrf": token.group(1), "name": name, "password": "wrong password", "next": "/"},
        headers={"x-forwarded-for": forwarded_for},
    )
    return response.status_code


@pytest.mark.parametrize("trusted", [True, False], ids=["proxy-headers", "without"])
def test_forwarded_headers_count_only_with_proxy_headers(
    redis_url: str, namespace: str, closed_port: int, tmp_path: Path, trusted: bool
) -> None:
    users = tmp_path / "users.json"
    feats.web.Users.add(users, "alice", PASSWORD, "editor")
    options = ["--users", str(users), *(["--proxy-headers"] if trusted else [])]
    with (
        feats_web(redis_url, namespace, closed_port, *options, ready="/login") as base,
        httpx.Client(base_url=base) as client,
    ):
        # X-Forwarded-Proto: the session cookie is Secure behind an https proxy.
        login = httpx.get(base + "/login", headers={"x-forwarded-proto": "https"})
        assert ("Secure" in login.headers["set-cookie"]) is trusted
        # X-Forwarded-For: the sign-in throttle locks the client the proxy names (5
        # failures), so another client behind the proxy may still try; without the flag
        # every request comes from the proxy itself and all are locked together.
        assert [_sign_in(client, "mallory", "192.0.2.1") for _ in range(5)] == [401] * 5
        assert _sign_in(client, "bob", "192.0.2.1") == 429  # that client is locked
        assert _sign_in(client, "carol", "192.0.2.2") == (401 if trusted else 429)
