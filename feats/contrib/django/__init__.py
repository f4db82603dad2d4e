"""Django glue: the ``FEATS`` setting, an AppConfig that starts the sync App once per serving
process, one configuration per request (``SnapshotMiddleware``), and ``manage.py feats``.

settings.py::

    INSTALLED_APPS = [..., "feats.contrib.django"]
    MIDDLEWARE = [..., "feats.contrib.django.SnapshotMiddleware"]
    FEATS = {"APP": "shop.flags:app", "REDIS_URL": "redis://127.0.0.1:6379/0", "NAMESPACE": "shop"}

and in ``shop/flags.py``: ``app = feats.App(storage=feats.contrib.django.redis_storage())``.
"""

from ._middleware import SnapshotMiddleware
from ._settings import FeatsSettings, ensure_started, feats_app, feats_settings, redis_storage

__all__ = [
    "FeatsSettings",
    "SnapshotMiddleware",
    "ensure_started",
    "feats_app",
    "feats_settings",
    "redis_storage",
]
