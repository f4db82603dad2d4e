"""Celery glue: start the sync App in every prefork worker process, close it as it ends."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

import feats

__all__ = ["connect"]


def connect(app: feats.App) -> None:
    """Start ``app`` in each worker process Celery's prefork pool starts
    (``worker_process_init``) and close it, flushing its exposures, when the process ends
    (``worker_process_shutdown``)::

        app = feats.App(storage=...)
        feats.contrib.celery.connect(app)

    An App already started in the parent (at import, say) survives the fork by itself: the
    sync App restarts its threads in each child, and the start here does nothing. That
    parent then holds an App of its own (two Redis connections) it never evaluates with;
    connecting this instead keeps the parent off Redis. With the solo or threads pool
    there is no worker process: start the App where the worker starts (``worker_init``).
    """

    def start(**kwargs: Any) -> None:
        app.start()

    def close(**kwargs: Any) -> None:
        app.close()

    # weak=False: these closures are referenced only by the signals.
    worker_process_init.connect(start, weak=False)
    worker_process_shutdown.connect(close, weak=False)
