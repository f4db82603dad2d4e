"""Redis URLs as the CLI shows them: never with a password, in any part of the URL."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact", "scrub", "secrets_of"]

_SECRET_KEY = re.compile(r"pass|auth|secret|token", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"((?:^|[&;])[^=&;]*(?:pass|auth|secret|token)[^=&;]*=)[^&;]*", re.I)
MIN_SCRUBBED = 4
"""Shorter secrets are not searched for in error texts (they would blank out common words);
the URL itself is always shown redacted."""


def redact(url: str) -> str:
    """The URL without its password: not in ``user:password@``, not in ``?password=``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a Redis URL that cannot be parsed)"
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user, colon, _ = credentials.partition(":")
        # No colon: redis://secret@host may carry a password in the user's place.
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(url: str) -> list[str]:
    """The passwords (and tokens) a Redis URL carries, as written and decoded."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0] if sep else ""
    if "@" in netloc:
        credentials = netloc.rpartition("@")[0]
        user, colon, password = credentials.partition(":")
        found.append(password if colon else user)
    for pair in re.split(r"[&;]", url.partition("?")[2].partition("#")[0]):
        key, equals, value = pair.partition("=")
        if equals and value and _SECRET_KEY.search(key):
            found.append(value)
    return [form for secret in found for form in {secret, unquote(secret)} if form]


def scrub(text: str, url: str) -> str:
    """``text`` (an error message) with the URL redacted and its secrets blanked out."""
    text = text.replace(url, redact(url))
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, "***")
    return text
