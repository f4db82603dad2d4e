"""The signed session cookie, CSRF tokens and the security headers of every response."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import MutableMapping
from http.cookies import SimpleCookie
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "COOKIE_NAME",
    "Session",
    "SessionMiddleware",
    "csrf_matches",
    "session_of",
]

COOKIE_NAME = "feats_session"
SCOPE_KEY = "feats.session"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
"""No inline script or style anywhere: a docstring that smuggles markup past the escaping
still could not run."""

SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
)


class Session:
    """What the cookie carries: the CSRF token, the signed-in user's name, a flash message."""

    def __init__(self, data: dict[str, Any], *, new: bool) -> None:
        self.data = data
        self.modified = new
        if not isinstance(data.get("csrf"), str):
            self.data["csrf"] = secrets.token_urlsafe(32)
            self.modified = True

    @property
    def csrf(self) -> str:
        token: str = self.data["csrf"]
        return token

    @property
    def user(self) -> str | None:
        name = self.data.get("user")
        return name if isinstance(name, str) else None

    def sign_in(self, name: str) -> None:
        """A fresh token at every sign-in: one planted before cannot be used after."""
        self.data = {"csrf": secrets.token_urlsafe(32), "user": name, "since": int(time.time())}
        self.modified = True

    def sign_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.modified = True

    def flash(self, message: str) -> None:
        self.data["flash"] = message
        self.modified = True

    def take_flash(self) -> str | None:
        message = self.data.pop("flash", None)
        if message is not None:
            self.modified = True
        return message if isinstance(message, str) else None


def session_of(scope: MutableMapping[str, Any]) -> Session:
    session: Session = scope[SCOPE_KEY]
    return session


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())


def _cache_control(scope: Scope) -> str:
    """Static files are cached (their URLs carry a content hash); pages never are."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return "public, max-age=86400" if path.startswith("/static/") else "no-store"


class SessionMiddleware:
    """Reads and writes the session cookie, and adds the security headers.

    The cookie is signed and timestamped (itsdangerous), HttpOnly, SameSite=Lax, Secure
    when the request came over https, and scoped to the path the admin is mounted at.
    """

    def __init__(self, app: ASGIApp, *, secret_key: str | bytes, max_age: int) -> None:
        self.app = app
        self.max_age = max_age
        self.serializer = URLSafeTimedSerializer(secret_key, salt="feats.web.session")

    def _load(self, scope: Scope) -> Session:
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except Exception:
                    # A malformed Cookie header from another app on the host: ignore it.
                    continue
        morsel = cookies.get(COOKIE_NAME)
        if morsel is not None:
            try:
                data = self.serializer.loads(morsel.value, max_age=self.max_age)
            except BadSignature:
                data = None
            if isinstance(data, dict):
                return Session(data, new=False)
        return Session({}, new=True)

    def _cookie(self, scope: Scope, session: Session) -> str:
        path = scope.get("root_path", "") or "/"
        parts = [
            f"{COOKIE_NAME}={self.serializer.dumps(session.data)}",
            f"Path={path}",
            f"Max-Age={self.max_age}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if scope.get("scheme") in ("https", "wss"):
            parts.append("Secure")
        return "; ".join(parts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._load(scope)
        scope[SCOPE_KEY] = session

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("cache-control", _cache_control(scope))
                if session.modified:
                    headers.append("set-cookie", self._cookie(scope, session))
            await send(message)

        await self.app(scope, receive, send_with_headers)
