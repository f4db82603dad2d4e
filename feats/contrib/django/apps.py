"""The AppConfig of ``feats.contrib.django``: checks FEATS, starts the App per process."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started

from ._settings import autoreloader_watcher, ensure_started, feats_settings

__all__ = ["FeatsConfig"]


def _start_on_request(sender: Any, **kwargs: Any) -> None:
    ensure_started()


class FeatsConfig(AppConfig):
    name = "feats.contrib.django"
    label = "feats"
    verbose_name = "feats feature flags"

    def ready(self) -> None:
        config = feats_settings()  # a wrong FEATS fails at start-up, not at a request
        request_started.connect(_start_on_request, dispatch_uid="feats-start-on-request")
        if config.start == "ready" and not autoreloader_watcher():
            ensure_started()
