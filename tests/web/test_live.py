"""Live pages: one watch per process fanned out to every page, over server-sent events."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio
import uvicorn

import feats
import feats.aio
import feats.web

from .conftest import SECRET, Serving


@pytest.fixture
async def storage(redis_url: str, namespace: str) -> AsyncIterator[feats.aio.RedisStorage]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield feats.aio.RedisStorage(client, namespace)
    await client.aclose()


async def test_one_watch_feeds_every_subscriber(
    storage: feats.aio.RedisStorage, serving: Serving
) -> None:
    app = feats.web.create_app(
        storage, anonymous=feats.web.Principal("t", "editor"), secret_key=SECRET
    )
    hub = app.state.feats.hub
    async with hub.subscribe() as first, hub.subscribe() as second:
        assert await hub.wait_ready(5.0)
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "feats-web-watch"]
        assert len(tasks) == 1
        version = serving.admin.route(
            "PaymentProcessor", "premium", where={"Country": "CA"}, author="cli", reason="why"
        )
        for queue in (first, second):
            event = await asyncio.wait_for(queue.get(), 10)
            assert (event["feature"], event["version"], event["author"]) == (
                "PaymentProcessor",
                version,
                "cli",
            )
            assert "+ Country=CA: premium" in event["diff"]
    # The last one left: the watch stops (no connection held for nobody).
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(task.done() for task in tasks)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_server_sent_events_over_http(
    storage: feats.aio.RedisStorage, serving: Serving
) -> None:
    app = feats.web.create_app(
        storage, anonymous=feats.web.Principal("t", "viewer"), secret_key=SECRET
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serve = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
            client.stream("GET", "/events") as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            events: list[tuple[str, dict[str, object]]] = []
            name = ""
            version = None
            async with asyncio.timeout(10):
                async for line in lines:
                    if line.startswith("event: "):
                        name = line[len("event: ") :]
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line[len("data: ") :])))
                        if name == "ready":
                            version = serving.admin.route(
                                "PaymentProcessor", "aperture", author="cli", reason="live"
                            )
                        elif name == "change":
                            break
        assert [name for name, _ in events] == ["ready", "change"]
        assert events[1][1]["version"] == version
    finally:
        server.should_exit = True
        await asyncio.wait_for(serve, 10)


async def test_many_pages_at_once_beside_the_watch(
    storage: feats.aio.RedisStorage, serving: Serving
) -> None:
    """No cap on concurrent page reads: they share the host's client with the blocked watch."""
    app = feats.web.create_app(
        storage, anonymous=feats.web.Principal("t", "viewer"), secret_key=SECRET
    )
    hub = app.state.feats.hub
    paths = ["/", "/features/PaymentProcessor", "/features/PaymentProcessor/history", "/drift"]
    async with (
        hub.subscribe() as queue,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        assert await hub.wait_ready(5.0)
        async with asyncio.timeout(30):
            pages = await asyncio.gather(*(client.get(paths[i % len(paths)]) for i in range(24)))
        assert [page.status_code for page in pages] == [200] * 24
        assert all("Redis is unavailable" not in page.text for page in pages)
        version = serving.admin.route("PaymentProcessor", "premium", author="cli", reason="x")
        event = await asyncio.wait_for(queue.get(), 10)
        assert event["version"] == version
