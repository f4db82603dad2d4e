"""The shop's feats App and features: one sync App per process, started by feats' AppConfig."""

from dataclasses import dataclass

import feats
from feats.contrib.django import redis_storage

app = feats.App(storage=redis_storage())  # FEATS["REDIS_URL"] and FEATS["NAMESPACE"]


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
