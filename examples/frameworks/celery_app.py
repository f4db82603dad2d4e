"""Celery on feats: every prefork worker process runs its own App and follows every change.

Run a worker (Redis on 127.0.0.1:6379 for configuration and as the broker, or set
FEATS_REDIS_URL and CELERY_BROKER_URL): ``celery -A celery_app:celery worker -P prefork -c 4``,
then call ``charge.delay(1, "CA").get()`` from a shell.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
from celery import Celery

import feats
import feats.contrib.celery

REDIS_URL = os.environ.get("FEATS_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("FEATS_NAMESPACE", "shop")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")

app = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(REDIS_URL), namespace=NAMESPACE))
feats.contrib.celery.connect(app)  # started in each worker process, closed as it ends

celery = Celery("shop", broker=BROKER_URL, backend=BROKER_URL)


@dataclass(frozen=True)
class User:
    id: int
    country: str


@app.segment
class Country:
    def user(self, user: User) -> str:
        return user.country


class PaymentProcessor(feats.FeatureClass[[User], str], app=app):
    @app.default
    def acme(self, user: User) -> str:
        return "acme"

    def premium(self, user: User) -> str:
        return "premium"


@celery.task(name="shop.charge")
def charge(user_id: int, country: str) -> dict[str, str | int | None]:
    user = User(user_id, country)
    return {
        "processor": PaymentProcessor.create(user),
        "version": app.version,
        "status": app.status.state,
        "pid": os.getpid(),
    }
