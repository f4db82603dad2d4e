"""The FEATS setting, the App it names, and starting that App once per process."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Literal

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

import feats

__all__ = ["FeatsSettings", "ensure_started", "feats_app", "feats_settings", "redis_storage"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
KEYS = frozenset({"APP", "REDIS_URL", "NAMESPACE", "START"})


@dataclass(frozen=True)
class FeatsSettings:
    """``settings.FEATS``: ``APP`` is the import path of the ``feats.App`` (``module:name``),
    ``REDIS_URL`` and ``NAMESPACE`` where its configuration lives (``redis_storage()`` and
    ``manage.py feats`` read them), ``START`` when each process starts it: ``"request"``
    (the default: at its first request, so a process that never serves, like the
    autoreloader's watcher, a gunicorn ``--preload`` master or ``manage.py migrate``, never
    connects) or ``"ready"`` (when Django is ready, but not in the autoreloader's watcher)."""

    app: str
    redis_url: str
    namespace: str | None
    start: Literal["request", "ready"]


def feats_settings() -> FeatsSettings:
    """``settings.FEATS``, checked: ImproperlyConfigured says what is wrong."""
    given = getattr(settings, "FEATS", None)
    if not isinstance(given, dict):
        raise ImproperlyConfigured(
            'feats: settings.FEATS must be a dict, e.g. {"APP": "shop.flags:app", '
            '"REDIS_URL": "redis://127.0.0.1:6379/0", "NAMESPACE": "shop"}'
        )
    unknown = sorted(set(given) - KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"feats: unknown key(s) in settings.FEATS: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KEYS))})"
        )
    app = given.get("APP")
    if not isinstance(app, str) or ":" not in app:
        raise ImproperlyConfigured(
            f'feats: settings.FEATS["APP"] must be "module:name" of a feats.App, got {app!r}'
        )
    start = given.get("START", "request")
    if start not in ("request", "ready"):
        raise ImproperlyConfigured(
            f'feats: settings.FEATS["START"] is "request" or "ready", got {start!r}'
        )
    namespace = given.get("NAMESPACE")
    if namespace is not None and not isinstance(namespace, str):
        raise ImproperlyConfigured(
            f'feats: settings.FEATS["NAMESPACE"] must be text, got {namespace!r}'
        )
    return FeatsSettings(
        app=app,
        redis_url=str(given.get("REDIS_URL") or DEFAULT_REDIS_URL),
        namespace=namespace,
        start=start,
    )


def redis_storage() -> feats.RedisStorage:
    """A RedisStorage on ``FEATS["REDIS_URL"]`` and ``FEATS["NAMESPACE"]``, for the App's
    module: ``app = feats.App(storage=feats.contrib.django.redis_storage())``."""
    config = feats_settings()
    client = redis.Redis.from_url(config.redis_url, socket_timeout=5)
    if config.namespace is None:
        return feats.RedisStorage(client)
    return feats.RedisStorage(client, namespace=config.namespace)


def feats_app() -> feats.App:
    """The App ``FEATS["APP"]`` names (imported on first use)."""
    path = feats_settings().app
    module_name, _, attribute = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ImproperlyConfigured(
            f'feats: cannot import FEATS["APP"] {path!r}: {error}'
        ) from error
    if not isinstance(found, feats.App):
        raise ImproperlyConfigured(
            f'feats: FEATS["APP"] {path!r} is a {type(found).__name__}, not a feats.App '
            "(Django serves requests on threads: use the sync App)"
        )
    return found


_lock = threading.Lock()
_started_in: int | None = None


def ensure_started() -> feats.App:
    """Start the App in this process unless it already was: at most once per process
    (a forked child starts its own; a sync App started before a fork follows on by itself)."""
    global _started_in
    app = feats_app()
    if _started_in == os.getpid():
        return app
    with _lock:
        if _started_in != os.getpid():
            app.start()
            if _started_in is None:
                atexit.register(app.close)  # flush the exposures left at exit
            _started_in = os.getpid()
    return app


def autoreloader_watcher() -> bool:
    """Whether this is ``runserver``'s watcher process, which restarts the server on code
    changes and never serves (Django sets RUN_MAIN in the child that serves)."""
    return (
        "runserver" in sys.argv
        and "--noreload" not in sys.argv
        and os.environ.get("RUN_MAIN") != "true"
    )
