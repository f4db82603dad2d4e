"""Flask on feats: the extension starts the App in each serving process, every request reads
one configuration, and /health/feats says whether this process follows Redis.

Run it (Redis on 127.0.0.1:6379, or set FEATS_REDIS_URL): ``flask --app flask_app run``, or
under gunicorn: ``gunicorn --preload -w 4 -b 127.0.0.1:8000 flask_app:flask_app``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
from flask import Flask, request

import feats
from feats.contrib.flask import Feats

REDIS_URL = os.environ.get("FEATS_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("FEATS_NAMESPACE", "shop")

app = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(REDIS_URL), namespace=NAMESPACE))


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


flask_app = Flask(__name__)
flags = Feats(flask_app, app=app, health_path="/health/feats")  # app.extensions["feats"]


@flask_app.get("/checkout/<int:user_id>")
def checkout(user_id: int) -> dict[str, str | int]:
    user = User(user_id, request.args.get("country", "US"))
    return {
        "processor": PaymentProcessor.create(user),
        "why": PaymentProcessor.explain(user).reason,
        "pid": os.getpid(),
    }


if __name__ == "__main__":
    flask_app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
