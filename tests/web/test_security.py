"""Deny by default: sign-in, roles, CSRF, escaping, headers, cookies, throttling."""

from __future__ import annotations

from pathlib import Path

import markupsafe
import pytest
import redis
from starlette.requests import Request
from starlette.testclient import TestClient

import feats
import feats.web

from ._shop import HOSTILE_DOC, HOSTILE_OPTION, declare, declare_hostile
from .conftest import PASSWORD, Client, Serving, csrf_of, sign_in

CHANGE = {
    "kind": "route",
    "where.Country": "CA",
    "implementation": "premium",
    "expected_version": "",
    "reason": "r",
}
PAGES = [
    "/",
    "/drift",
    "/catalog",
    "/events",
    "/state.json",
    "/features/PaymentProcessor",
    "/features/PaymentProcessor/history",
    "/features/PaymentProcessor/diff?before=",
    "/features/PaymentProcessor/explain",
    "/features/PaymentProcessor/exposures",
    "/features/PaymentProcessor/plan.json",
    "/features/PaymentProcessor/edit/route",
]


def test_every_page_needs_a_signed_in_user(client_for: Client, serving: Serving) -> None:
    with client_for() as client:
        for path in PAGES:
            page = client.get(path, headers={"accept": "text/html"}, follow_redirects=False)
            assert page.status_code == 303, path
            assert page.headers["location"].startswith("/login")
            assert client.get(path, headers={"accept": "application/json"}).status_code == 401
        for path in ("/features/PaymentProcessor/preview", "/features/PaymentProcessor/apply"):
            response = client.post(path, data={"csrf": csrf_of(client), **CHANGE})
            assert response.status_code == 401
    assert serving.history() == []


def test_sign_in_redirects_back_but_never_off_site(client_for: Client, serving: Serving) -> None:
    with client_for() as client:
        page = client.get(
            "/features/PaymentProcessor/history",
            headers={"accept": "text/html"},
            follow_redirects=False,
        )
        assert page.headers["location"] == "/login?next=%2Ffeatures%2FPaymentProcessor%2Fhistory"
        for target, landing in [
            ("/features/PaymentProcessor", "/features/PaymentProcessor"),
            ("//evil.example/", "/"),
            ("https://evil.example/", "/"),
        ]:
            response = client.post(
                "/login",
                data={
                    "csrf": csrf_of(client),
                    "name": "alice",
                    "password": PASSWORD,
                    "next": target,
                },
                follow_redirects=False,
            )
            assert response.headers["location"] == landing


def test_a_post_without_the_csrf_token_is_refused(editor: TestClient, serving: Serving) -> None:
    for csrf in (None, "", "forged"):
        data = dict(CHANGE) if csrf is None else {**CHANGE, "csrf": csrf}
        response = editor.post("/features/PaymentProcessor/apply", data=data)
        assert response.status_code == 403
        assert "Nothing was changed" in response.text
    cross = editor.post(
        "/features/PaymentProcessor/apply",
        data={**CHANGE, "csrf": csrf_of(editor, "/")},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross.status_code == 403
    assert serving.history() == []


def test_a_viewer_reads_but_every_post_is_refused(viewer: TestClient, serving: Serving) -> None:
    page = viewer.get("/features/PaymentProcessor")
    assert page.status_code == 200
    assert "Route users" not in page.text and "Reset to the default" not in page.text
    assert viewer.get("/features/PaymentProcessor/edit/route").status_code == 403
    csrf = csrf_of(viewer, "/")
    for path in ("/features/PaymentProcessor/preview", "/features/PaymentProcessor/apply"):
        response = viewer.post(path, data={"csrf": csrf, **CHANGE})
        assert response.status_code == 403
        assert "viewer" in response.text
    assert serving.history() == []


def test_wrong_passwords_are_throttled(client_for: Client, serving: Serving) -> None:
    clock = [1000.0]
    throttle = feats.web.LoginThrottle(limit=3, lockout=30, clock=lambda: clock[0])
    with client_for(throttle=throttle) as client:

        def attempt(password: str) -> int:
            data = {"csrf": csrf_of(client), "name": "alice", "password": password, "next": "/"}
            return int(client.post("/login", data=data, follow_redirects=False).status_code)

        assert [attempt("wrong password") for _ in range(3)] == [401, 401, 401]
        # Locked: even the right password is refused, and says how long to wait.
        assert attempt(PASSWORD) == 429
        locked = client.post(
            "/login",
            data={"csrf": csrf_of(client), "name": "ALICE", "password": PASSWORD},
        )
        assert locked.status_code == 429 and "try again in" in locked.text
        assert int(locked.headers["retry-after"]) > 0
        assert client.get("/", headers={"accept": "application/json"}).status_code == 401
        clock[0] += 31
        assert attempt(PASSWORD) == 303
        assert client.get("/").status_code == 200


def test_cookie_flags_and_security_headers(client_for: Client, serving: Serving) -> None:
    with client_for() as client:
        page = client.get("/login")
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    with client_for() as secure:
        page = secure.get("https://testserver/login")
        assert "Secure" in page.headers["set-cookie"]


def test_a_tampered_cookie_signs_nobody_in(client_for: Client, serving: Serving) -> None:
    with client_for() as client:
        sign_in(client)
        assert client.get("/").status_code == 200
        value = client.cookies["feats_session"]
        client.cookies.set("feats_session", value[:-3] + ("aaa" if value[-3:] != "aaa" else "bbb"))
        assert client.get("/", headers={"accept": "application/json"}).status_code == 401


def test_hostile_strings_are_escaped(
    client_for: Client, sync_redis: redis.Redis, namespace: str
) -> None:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace, block_ms=500), block_ms=500)
    declare(app)
    declare_hostile(app)
    with app, client_for() as client:
        app.admin.set_state(
            "Sneaky",
            feats.FeatureState(
                segments=["Hostile"], rules={(HOSTILE_OPTION,): feats.Static("risky")}
            ),
            author='<b onmouseover="x">mallory</b>',
            reason="<script>alert('reason')</script>",
        )
        sign_in(client)
        for path in (
            "/",
            "/features/Sneaky",
            "/features/Sneaky/history",
            "/features/Sneaky/edit/route",
            "/features/Sneaky/explain?where.Hostile=plain",
        ):
            text = client.get(path).text
            for hostile in (
                HOSTILE_DOC,
                HOSTILE_OPTION,
                "<script>alert('reason')</script>",
                '<b onmouseover="x">',
            ):
                assert hostile not in text, (path, hostile)
            assert "<script" not in text.replace('<script src="/static/feats.js', ""), path
        feature = client.get("/features/Sneaky").text
        assert str(markupsafe.escape(HOSTILE_DOC)) in feature  # shown, as text
        assert str(markupsafe.escape(HOSTILE_OPTION)) in feature


def test_create_app_refuses_to_run_without_a_way_to_authenticate(
    serving: Serving, users_file: Path
) -> None:
    storage = feats.aio.MemoryStorage()
    with pytest.raises(ValueError, match="exactly one of auth="):
        feats.web.create_app(storage, secret_key="x" * 32)
    with pytest.raises(ValueError, match="exactly one of auth="):
        feats.web.create_app(
            storage,
            secret_key="x" * 32,
            users=users_file,
            anonymous=feats.web.Principal("a", "editor"),
        )
    with pytest.raises(ValueError, match="at least 16 bytes"):
        feats.web.create_app(storage, secret_key="short", users=users_file)


def test_the_auth_hook_decides_who_and_which_role(client_for: Client, serving: Serving) -> None:
    def hook(request: Request) -> feats.web.Principal | None:
        name = request.headers.get("x-user")
        if not name:
            return None
        return feats.web.Principal(name, "editor" if name == "erin" else "viewer")

    with client_for(auth=hook) as client:
        assert client.get("/", headers={"accept": "text/html"}).status_code == 401
        assert client.get("/", headers={"x-user": "vic"}).status_code == 200
        csrf = csrf_of(client, "/", **{"x-user": "vic"})
        refused = client.post(
            "/features/PaymentProcessor/apply",
            data={"csrf": csrf, **CHANGE},
            headers={"x-user": "vic"},
        )
        assert refused.status_code == 403
        assert serving.history() == []
        done = client.post(
            "/features/PaymentProcessor/apply",
            data={"csrf": csrf, **CHANGE},
            headers={"x-user": "erin"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert [c.author for c in serving.history()] == ["erin"]


async def test_an_async_auth_hook(client_for: Client, serving: Serving) -> None:
    async def hook(request: Request) -> feats.web.Principal | None:
        return feats.web.Principal("ann", "viewer") if request.headers.get("x-ok") else None

    with client_for(auth=hook, login_url="/sso/login") as client:
        page = client.get("/", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/sso/login"
        assert "ann" in client.get("/", headers={"x-ok": "1"}).text


def test_no_auth_mode_says_so_on_every_page(client_for: Client, serving: Serving) -> None:
    with client_for(anonymous=feats.web.Principal("local", "editor")) as client:
        page = client.get("/")
        assert page.status_code == 200 and "Authentication is off" in page.text
        response = client.post(
            "/features/PaymentProcessor/apply",
            data={"csrf": csrf_of(client, "/features/PaymentProcessor/edit/route"), **CHANGE},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert client.post("/features/PaymentProcessor/apply", data=CHANGE).status_code == 403
    assert [c.author for c in serving.history()] == ["local"]
