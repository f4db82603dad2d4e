"""Flask glue: ``Feats(app)`` / ``init_app(app)``, stored in ``app.extensions["feats"]``;
the App starts once per serving process and every request reads one configuration."""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

from flask import Flask, Response, current_app, g, jsonify

import feats

__all__ = ["Feats", "current_feats"]


class Feats:
    """The Flask extension::

        flags = Feats(flask_app, app=app)     # or Feats(app=app), then flags.init_app(flask_app)

    ``app`` is the sync ``feats.App`` (or set ``FEATS_APP = "module:name"`` in the Flask
    config). The App starts at the first request of each process, so a process that never
    serves (the reloader's watcher, a gunicorn ``--preload`` master) never connects; call
    ``start()`` to start it earlier. Each request reads the configuration current when it
    began (``app.snapshot()``); ``health_path`` adds a health endpoint (200 live, else 503).
    """

    def __init__(
        self,
        flask_app: Flask | None = None,
        *,
        app: feats.App | None = None,
        health_path: str | None = None,
    ) -> None:
        self.app = app
        self.health_path = health_path
        self._lock = threading.Lock()
        self._started_in: int | None = None
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Flask) -> None:
        if self.app is None:
            self.app = _import_app(flask_app.config.get("FEATS_APP"))
        flask_app.extensions["feats"] = self
        flask_app.before_request(self._before_request)
        flask_app.teardown_request(self._teardown_request)
        if self.health_path is not None:
            flask_app.add_url_rule(self.health_path, "feats_health", self._health, methods=["GET"])

    @property
    def feats_app(self) -> feats.App:
        if self.app is None:
            raise RuntimeError("Feats has no feats.App yet: pass app=, or call init_app()")
        return self.app

    def start(self) -> feats.App:
        """Start the App in this process unless it already was (at most once per process)."""
        app = self.feats_app
        if self._started_in != os.getpid():
            with self._lock:
                if self._started_in != os.getpid():
                    app.start()
                    self._started_in = os.getpid()
        return app

    def _before_request(self) -> None:
        snapshot = self.start().snapshot()
        snapshot.__enter__()
        g._feats_snapshot = snapshot

    def _teardown_request(self, error: BaseException | None) -> None:
        snapshot = g.pop("_feats_snapshot", None)
        if snapshot is not None:
            snapshot.__exit__(None, None, None)

    def _health(self) -> tuple[Response, int]:
        status = self.feats_app.status
        body = jsonify(
            state=status.state,
            live=status.live,
            version=status.version,
            lag=status.lag,
            error=status.error,
        )
        return body, 200 if status.live else 503


def current_feats() -> feats.App:
    """The feats App of the Flask app handling this request (or in this app context)."""
    extension: Feats = current_app.extensions["feats"]
    return extension.feats_app


def _import_app(path: Any) -> feats.App:
    if not isinstance(path, str) or ":" not in path:
        raise RuntimeError(
            f'feats: give Feats(app=...) or set FEATS_APP = "module:name" in the Flask config, '
            f"got {path!r}"
        )
    module_name, _, attribute = path.partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(found, feats.App):
        raise RuntimeError(
            f"feats: FEATS_APP {path!r} is a {type(found).__name__}, not a feats.App"
        )
    return found
