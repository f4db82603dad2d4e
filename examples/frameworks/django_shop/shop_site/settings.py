"""Settings of the example shop: feats is an installed app with its middleware and FEATS."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "shop_site.urls"
USE_TZ = True
DATABASES: dict[str, dict[str, str]] = {}

INSTALLED_APPS = ["feats.contrib.django"]
MIDDLEWARE = ["feats.contrib.django.SnapshotMiddleware"]  # one configuration per request

FEATS = {
    "APP": "shop_site.flags:app",
    "REDIS_URL": os.environ.get("FEATS_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "NAMESPACE": os.environ.get("FEATS_NAMESPACE", "shop"),
}
