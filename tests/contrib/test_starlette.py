"""feats.contrib.starlette against the real Starlette and FastAPI (TestClient over httpx),
on the real Redis: lifespan, one configuration per request, the dependency, health."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import feats
import feats.aio
from feats.contrib.starlette import SnapshotMiddleware, lifespan, routes
from tests.contrib._load import load_example

pytestmark = pytest.mark.redis


@dataclass(frozen=True)
class User:
    id: int
    country: str


def declare(
    app: feats.aio.App,
) -> tuple[Any, type[feats.aio.FeatureClass[[User], str]]]:
    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    class PaymentProcessor(feats.aio.FeatureClass[[User], str], app=app):
        @app.default
        def acme(self, user: User) -> str:
            return "acme"

        def premium(self, user: User) -> str:
            return "premium"

        async def aperture(self, user: User) -> str:
            return "aperture"

    return Country, PaymentProcessor


def route_ca(segment: Any, implementation: str) -> feats.FeatureState:
    return feats.FeatureState(segments=[segment], rules={("CA",): feats.Static(implementation)})


def storage(redis_url: str, namespace: str) -> feats.aio.RedisStorage:
    return feats.aio.RedisStorage(redis.asyncio.Redis.from_url(redis_url), namespace=namespace)


def test_lifespan_runs_the_app_around_the_hosts_own(redis_url: str, namespace: str) -> None:
    app = feats.aio.App(storage=storage(redis_url, namespace))
    declare(app)
    seen: list[str] = []

    @asynccontextmanager
    async def host_lifespan(host: Starlette) -> AsyncIterator[dict[str, Any]]:
        seen.append(f"host start, feats {app.status.state}")
        yield {"greeting": "hello"}
        seen.append(f"host stop, feats {app.status.state}")

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"greeting": request.state.greeting, "feats": app.status.state})

    host = Starlette(routes=[Route("/", hello)], lifespan=lifespan(app, host_lifespan))
    assert app.status.state == "initializing"
    with TestClient(host) as client:
        assert client.get("/").json() == {"greeting": "hello", "feats": "live"}
    assert seen == ["host start, feats live", "host stop, feats live"]
    assert app.status.closed


def test_one_configuration_per_request_across_a_change(redis_url: str, namespace: str) -> None:
    """Two create() calls of one request, an await between them, a change in between."""
    app = feats.aio.App(storage=storage(redis_url, namespace))
    country, processor = declare(app)
    writer = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(redis_url), namespace))
    _, written = declare_sync(writer)

    async def twice(request: Request) -> JSONResponse:
        user = User(1, "CA")
        first = await processor.create(user)
        # Another process changes the configuration while this request awaits.
        version = await asyncio.to_thread(
            writer.admin.set_state, written, route_ca(country, "premium"), author="t", reason="r"
        )
        await app.wait_for_version(version, timeout=10)
        second = await processor.create(user)
        return JSONResponse([first, second, processor.explain(user).implementation])

    def client(pinned: bool) -> TestClient:
        host = Starlette(routes=[Route("/", twice)], lifespan=lifespan(app))
        if pinned:
            host.add_middleware(SnapshotMiddleware, app=app)
        return TestClient(host)

    for pinned, expected in (
        (False, ["aperture", "premium", "premium"]),  # the problem: two configurations
        (True, ["aperture", "aperture", "aperture"]),  # the fix: one per request
    ):
        writer.admin.set_state(written, route_ca(country, "aperture"), author="t", reason="r")
        with client(pinned) as http:
            assert http.get("/").json() == expected, pinned
            # The next request reads the new configuration.
            assert asyncio.run(processor.create(User(1, "CA"))) == "premium"


def declare_sync(
    app: feats.App,
) -> tuple[Any, type[feats.FeatureClass[[User], str]]]:
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

        def aperture(self, user: User) -> str:
            return "aperture"

    return Country, PaymentProcessor


def test_health_answers_200_live_and_503_otherwise(redis_url: str, namespace: str) -> None:
    app = feats.aio.App(storage=storage(redis_url, namespace))
    declare(app)
    host = Starlette(routes=routes(app), lifespan=lifespan(app))
    with TestClient(host) as client:
        live = client.get("/health/feats")
        assert live.status_code == 200
        assert live.json()["state"] == "live"
        assert live.json()["live"] is True
    with TestClient(Starlette(routes=routes(app))) as client:
        closed = client.get("/health/feats")
        assert (closed.status_code, closed.json()["state"]) == (503, "closed")


def test_metrics_are_served_at_a_path_when_asked(redis_url: str, namespace: str) -> None:
    from prometheus_client import CollectorRegistry

    from feats.contrib.prometheus import FeatsCollector

    app = feats.aio.App(storage=storage(redis_url, namespace))
    declare(app)
    registry = CollectorRegistry()
    registry.register(FeatsCollector(app, labels={"namespace": namespace}))
    host = Starlette(
        routes=routes(app, metrics_path="/metrics", registry=registry), lifespan=lifespan(app)
    )
    with TestClient(host) as client:
        scrape = client.get("/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        assert f'feats_state{{namespace="{namespace}",state="live"}} 1.0' in scrape.text
        openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
    # Starlette types a route as BaseRoute, which has no path: ours are Route objects.
    assert [route.path for route in routes(app)] == ["/health/feats"]  # type: ignore[attr-defined]


def test_health_is_503_while_storage_does_not_answer() -> None:
    # Port 1 on loopback refuses connections: the App serves defaults, initializing.
    unreachable = feats.aio.RedisStorage(
        redis.asyncio.Redis(host="127.0.0.1", port=1, socket_timeout=0.2), namespace="t"
    )
    app = feats.aio.App(storage=unreachable, start_timeout=0.2)
    declare(app)
    with TestClient(Starlette(routes=routes(app), lifespan=lifespan(app))) as client:
        response = client.get("/health/feats")
        assert response.status_code == 503
        assert response.json()["state"] in {"initializing", "stale"}
        assert response.json()["live"] is False


@pytest.fixture
def fastapi_example(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str
) -> Iterator[Any]:
    yield load_example("fastapi_app", monkeypatch, redis_url, namespace)


def test_the_fastapi_example(fastapi_example: Any, redis_url: str, namespace: str) -> None:
    module = fastapi_example
    writer = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(redis_url), namespace))
    country, processor = declare_sync(writer)
    with TestClient(module.api) as client:
        assert module.api.state.started
        assert client.get("/checkout/1", params={"country": "CA"}).json() == {
            "processor": "acme",
            "why": "no configuration: the default answers",
        }
        version = writer.admin.set_state(
            processor, route_ca(country, "aperture"), author="t", reason="r"
        )
        ready = threading.Event()
        module.app.add_listener(lambda applied, features: ready.set())
        if module.app.version != version:
            assert ready.wait(10)
        body = client.get("/checkout/1", params={"country": "CA"}).json()
        assert body == {"processor": "aperture", "why": "rule Country=CA: static aperture"}
        flags = client.get("/flags/1", params={"country": "CA"}).json()
        assert flags == {"processor": "aperture", "version": version}
        health = client.get("/health/feats")
        assert (health.status_code, health.json()["version"]) == (200, version)
    assert module.app.status.closed
