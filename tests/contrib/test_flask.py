"""feats.contrib.flask with the real Flask (its test client), on the real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask

import feats
from feats.contrib.flask import Feats, current_feats
from tests.contrib._load import load_example

pytestmark = pytest.mark.redis


@dataclass(frozen=True)
class Customer:
    country: str


def writer(redis_url: str, namespace: str) -> tuple[feats.App, Any]:
    """The ops side: another App on the namespace, declaring the same feature."""
    other = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(redis_url), namespace))

    class Country:
        def customer(self, customer: Customer) -> str:
            return customer.country

    country = other.segment(Country)

    class PaymentProcessor(feats.FeatureClass[[Customer], str], app=other):
        @other.default
        def acme(self, customer: Customer) -> str:
            return "acme"

        def premium(self, customer: Customer) -> str:
            return "premium"

    return other, country


def route_ca(segment: Any, implementation: str) -> feats.FeatureState:
    return feats.FeatureState(segments=[segment], rules={("CA",): feats.Static(implementation)})


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str) -> Iterator[Any]:
    module = load_example("flask_app", monkeypatch, redis_url, namespace)
    yield module
    module.app.close()


def test_the_extension_is_stored_and_starts_at_the_first_request(example: Any) -> None:
    assert example.flask_app.extensions["feats"] is example.flags
    assert example.app.status.state == "initializing"  # nothing started at import
    client = example.flask_app.test_client()
    body = client.get("/checkout/1?country=CA").get_json()
    assert (body["processor"], body["why"]) == ("acme", "no configuration: the default answers")
    assert example.app.status.live
    with example.flask_app.app_context():
        assert current_feats() is example.app


def test_changes_reach_requests_and_health(example: Any, redis_url: str, namespace: str) -> None:
    client = example.flask_app.test_client()
    assert client.get("/health/feats").status_code == 200
    ops, country = writer(redis_url, namespace)
    version = ops.admin.set_state(
        "PaymentProcessor", route_ca(country, "premium"), author="t", reason=""
    )
    example.app.wait_for_version(version, timeout=10)
    assert client.get("/checkout/1?country=CA").get_json()["processor"] == "premium"
    health = client.get("/health/feats")
    assert health.get_json()["version"] == version
    example.app.close()
    closed = client.get("/health/feats")  # the extension does not restart a closed App
    assert (closed.status_code, closed.get_json()["state"]) == (503, "closed")


def test_one_configuration_per_request(example: Any, redis_url: str, namespace: str) -> None:
    ops, country = writer(redis_url, namespace)
    ops.admin.set_state("PaymentProcessor", route_ca(country, "acme"), author="t", reason="")

    host: Flask = example.flask_app

    @host.get("/twice")
    def twice() -> list[str]:
        user = example.User(1, "CA")
        first = example.PaymentProcessor.create(user)
        version = ops.admin.set_state(
            "PaymentProcessor", route_ca(country, "premium"), author="t", reason="mid-request"
        )
        example.app.wait_for_version(version, timeout=10)
        return [first, example.PaymentProcessor.create(user)]

    client = example.flask_app.test_client()
    assert client.get("/twice").get_json() == ["acme", "acme"]
    assert client.get("/checkout/1?country=CA").get_json()["processor"] == "premium"


def test_init_app_reads_feats_app_from_the_config(example: Any) -> None:
    later = Feats()
    host = Flask("later")
    host.config["FEATS_APP"] = f"{example.__name__}:app"
    later.init_app(host)
    assert host.extensions["feats"] is later
    assert later.feats_app is example.app
    with pytest.raises(RuntimeError, match="FEATS_APP"):
        Feats().init_app(Flask("unconfigured"))
